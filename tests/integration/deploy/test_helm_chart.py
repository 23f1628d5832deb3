"""The Helm chart, linted and rendered by Helm's own library, every manifest validated.

helm-sdkpy (Helm's Go library, Python 3.12) runs in its own venv under var/peers/helm:
tests/fixtures/peers/helm_render.py lints the chart and installs it into an in-process
stand-in for the API server, and prints what Helm rendered. Each manifest is validated
against the Kubernetes 1.31 schema (kubernetes-validate, strict: unknown fields refused);
the CRDs that schema lacks (ServiceMonitor, CloudNativePG's Cluster) are checked by hand.
"""

from __future__ import annotations

import base64
import json
import subprocess
from functools import cache
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO, need_peer

pytestmark = pytest.mark.peer_helm

CHART = REPO / "helm"
HELM_PYTHON = REPO / "var" / "peers" / "helm" / "bin" / "python"
RUNNER = REPO / "tests" / "fixtures" / "peers" / "helm_render.py"
K8S_VERSION = "1.31"
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("postgresql.cnpg.io/v1", "Cluster")}
RELEASE_PREFIX = "cp-control-plane"
# what a test puts in a Secret and must never find in plain text elsewhere
DB_URL = "postgresql://cp:s3cret-db-pass@db.ca-qc-1.internal:5432/control_plane"
SESSION_KEY = "session-key-" + "k" * 40


def helm_missing() -> str | None:
    if not HELM_PYTHON.exists():
        return f"helm-sdkpy venv missing ({HELM_PYTHON}); run make peers"
    probe = subprocess.run(
        [str(HELM_PYTHON), "-c", "import helm_sdkpy"], capture_output=True, check=False
    )
    return None if probe.returncode == 0 else "helm-sdkpy does not import in var/peers/helm"


class Render:
    """What Helm rendered for one set of values: ordinary objects and hooks."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.lint: dict[str, Any] = result["lint"]
        self.applied: list[str] = result["applied"]
        self.objects = [d for d in yaml.safe_load_all(result["manifest"]) if d]
        self.hooks = [
            {**doc, "_events": hook["events"]}
            for hook in result["hooks"]
            for doc in yaml.safe_load_all(hook["manifest"])
            if doc
        ]

    @property
    def all(self) -> list[dict[str, Any]]:
        return self.objects + self.hooks

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.all if doc["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        (found,) = [doc for doc in self.kind(kind) if doc["metadata"]["name"] == name]
        return found


@cache
def _render(values_json: str) -> Render:
    values_file = REPO / "var" / f"helm-values-{abs(hash(values_json))}.json"
    values_file.parent.mkdir(exist_ok=True)
    values_file.write_text(values_json)
    done = subprocess.run(
        [str(HELM_PYTHON), str(RUNNER), str(CHART), str(values_file), "control-plane"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    values_file.unlink()
    assert done.returncode == 0, done.stderr[-4000:]
    return Render(json.loads(done.stdout))


def render(values: dict[str, Any] | None = None) -> Render:
    need_peer(helm_missing())
    return _render(json.dumps(values or {}, sort_keys=True))


def cnpg_values() -> dict[str, Any]:
    loaded = yaml.safe_load((CHART / "examples" / "cnpg-values.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def pod_specs(rendered: Render) -> list[tuple[str, dict[str, Any]]]:
    return [
        (doc["metadata"]["name"], doc["spec"]["template"]["spec"])
        for doc in rendered.all
        if doc["kind"] in {"Deployment", "Job"}
    ]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def validate_all(rendered: Render) -> None:
    for doc in rendered.all:
        doc = {k: v for k, v in doc.items() if k != "_events"}
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            continue  # checked by hand in the tests that render them
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:  # pragma: no cover - the message
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc}")


VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "cnpg": {},  # filled from the example file in the test
    "existing-secret": {"secrets": {"existingSecret": "cp-from-vault"}},
    "chart-secrets": {
        "database": {"url": DB_URL},
        "secrets": {"values": {"CP_SECRET_KEY": SESSION_KEY}},
    },
    "no-autoscaling": {
        "api": {"autoscaling": {"enabled": False}, "replicas": 3},
        "gateway": {"autoscaling": {"enabled": False}, "replicas": 4},
        "reconciler": {"replicas": 5, "pdb": {"enabled": False}},
        "ingress": {"enabled": False},
        "networkPolicy": {"enabled": False},
        "serviceMonitor": {"enabled": True},
        "persistence": {"existingClaim": "cp-keys"},
    },
}


def variant(name: str) -> Render:
    return render(cnpg_values() if name == "cnpg" else VARIANTS[name])


class TestLintAndSchema:
    def test_lint_reports_no_warning_or_error(self) -> None:
        lint = render().lint
        assert lint["Errors"] is None
        assert lint["TotalChartsLinted"] == 1
        assert all(message["Severity"] < 2 for message in lint["Messages"] or [])

    @pytest.mark.parametrize("name", sorted(VARIANTS))
    def test_every_manifest_validates_against_the_kubernetes_schema(self, name: str) -> None:
        rendered = variant(name)
        assert rendered.objects
        validate_all(rendered)

    def test_helm_created_what_it_rendered(self) -> None:
        rendered = render()
        names = {f"{d['kind']}/{d['metadata']['name']}" for d in rendered.all}
        assert len(rendered.applied) == len(names)


class TestWorkloads:
    @pytest.mark.parametrize("name", sorted(VARIANTS))
    def test_every_pod_is_locked_down(self, name: str) -> None:
        specs = pod_specs(variant(name))
        assert len(specs) == 4  # api, gateway, reconciler, migrate
        for pod_name, spec in specs:
            assert spec["securityContext"]["runAsNonRoot"] is True, pod_name
            assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert spec["automountServiceAccountToken"] is False
            for container in spec["containers"]:
                sc = container["securityContext"]
                assert sc["runAsNonRoot"] is True, pod_name
                assert sc["runAsUser"] != 0, pod_name
                assert sc["readOnlyRootFilesystem"] is True, pod_name
                assert sc["allowPrivilegeEscalation"] is False, pod_name
                assert sc["capabilities"] == {"drop": ["ALL"]}, pod_name
                assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, pod_name
                assert container["resources"]["requests"]
                assert container["resources"]["limits"]
                mounts = [m["mountPath"] for m in container["volumeMounts"]]
                assert all(p == "/tmp" or p.startswith("/var/run/cp") for p in mounts)

    def test_deployments_probe_healthz_and_readyz(self) -> None:
        for deployment in render().kind("Deployment"):
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
            assert container["args"] == ["serve"]

    def test_only_the_reconciler_runs_the_reconciler(self) -> None:
        enabled = {}
        for deployment in render().kind("Deployment"):
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            enabled[deployment["metadata"]["name"]] = env_of(container)["CP_RECONCILER_ENABLED"]
        assert enabled == {
            f"{RELEASE_PREFIX}-api": "false",
            f"{RELEASE_PREFIX}-gateway": "false",
            f"{RELEASE_PREFIX}-reconciler": "true",
        }

    def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(self) -> None:
        rendered = render()
        (job,) = rendered.kind("Job")
        assert job in rendered.hooks
        assert job not in rendered.objects
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        assert job["_events"] == ["pre-install", "pre-upgrade"]
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["db", "upgrade"]
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"

    def test_replicas_and_hpas_follow_the_values(self) -> None:
        default = render()
        assert {h["metadata"]["name"] for h in default.kind("HorizontalPodAutoscaler")} == {
            f"{RELEASE_PREFIX}-api",
            f"{RELEASE_PREFIX}-gateway",
        }
        # the HPA owns the replica count where it is on
        replicas = {
            d["metadata"]["name"]: d["spec"].get("replicas") for d in default.kind("Deployment")
        }
        assert replicas[f"{RELEASE_PREFIX}-api"] is None
        assert replicas[f"{RELEASE_PREFIX}-reconciler"] == 2
        fixed = variant("no-autoscaling")
        assert fixed.kind("HorizontalPodAutoscaler") == []
        replicas = {d["metadata"]["name"]: d["spec"]["replicas"] for d in fixed.kind("Deployment")}
        assert replicas == {
            f"{RELEASE_PREFIX}-api": 3,
            f"{RELEASE_PREFIX}-gateway": 4,
            f"{RELEASE_PREFIX}-reconciler": 5,
        }
        assert {p["metadata"]["name"] for p in fixed.kind("PodDisruptionBudget")} == {
            f"{RELEASE_PREFIX}-api",
            f"{RELEASE_PREFIX}-gateway",
        }
        assert fixed.kind("Ingress") == []
        assert fixed.kind("NetworkPolicy") == []
        assert fixed.kind("PersistentVolumeClaim") == []  # the existing claim is mounted
        volumes = fixed.one("Deployment", f"{RELEASE_PREFIX}-api")["spec"]["template"]["spec"][
            "volumes"
        ]
        assert {"name": "data", "persistentVolumeClaim": {"claimName": "cp-keys"}} in volumes


class TestRouting:
    def test_ingress_sends_inference_to_the_gateway_and_the_rest_to_the_api(self) -> None:
        (ingress,) = render().kind("Ingress")
        (rule,) = ingress["spec"]["rules"]
        assert rule["host"] == "cloud.ca-qc-1.example"
        backends = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
        assert backends == {
            "/v1": f"{RELEASE_PREFIX}-gateway",
            "/v2": f"{RELEASE_PREFIX}-gateway",
            "/": f"{RELEASE_PREFIX}-api",
        }

    def test_network_policy_admits_only_the_ingress_controller_and_prometheus(self) -> None:
        rendered = render(cnpg_values())
        (policy,) = rendered.kind("NetworkPolicy")
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        (ingress_rule,) = policy["spec"]["ingress"]
        sources = [
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for peer in ingress_rule["from"]
        ]
        assert sources == ["ingress-nginx", "prometheus"]
        egress_ports = [
            [p["port"] for p in rule.get("ports", [])] for rule in policy["spec"]["egress"]
        ]
        assert egress_ports == [[53, 53], [5432], [443]]  # DNS, PostgreSQL, the BMCs
        postgres_peer = policy["spec"]["egress"][1]["to"][0]
        assert postgres_peer["podSelector"] == {"matchLabels": {"cnpg.io/cluster": "cp-db"}}

    def test_service_monitor_scrapes_metrics(self) -> None:
        assert render().kind("ServiceMonitor") == []
        (monitor,) = render(cnpg_values()).kind("ServiceMonitor")
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        assert monitor["spec"]["endpoints"] == [
            {"port": "http", "path": "/metrics", "interval": "30s"}
        ]
        selector = monitor["spec"]["selector"]["matchLabels"]
        services = render(cnpg_values()).kind("Service")
        assert services
        assert all(selector.items() <= s["metadata"]["labels"].items() for s in services)


class TestConfigurationAndSecrets:
    def test_region_and_settings_come_from_the_config_map(self) -> None:
        rendered = render({"region": "se-north-1", "config": {"CP_LOG_LEVEL": "DEBUG"}})
        (config,) = rendered.kind("ConfigMap")
        assert config["data"]["CP_REGION"] == "se-north-1"
        assert config["data"]["CP_LOG_LEVEL"] == "DEBUG"
        assert config["data"]["CP_KEY_DIR"].startswith("/var/run/cp/")
        job_env = env_of(rendered.kind("Job")[0]["spec"]["template"]["spec"]["containers"][0])
        assert job_env["CP_REGION"] == "se-north-1"

    def test_secret_values_never_appear_in_plain_text(self) -> None:
        rendered = variant("chart-secrets")
        plain = json.dumps([d for d in rendered.all if d["kind"] != "Secret"])
        assert DB_URL not in plain
        assert "s3cret-db-pass" not in plain
        assert SESSION_KEY not in plain
        (config,) = rendered.kind("ConfigMap")
        assert not any("DATABASE" in k or "SECRET" in k for k in config["data"])
        database = rendered.one("Secret", f"{RELEASE_PREFIX}-database")
        assert base64.b64decode(database["data"]["url"]).decode() == DB_URL
        # the migration hook needs it before the release's ordinary objects exist
        assert database in rendered.hooks
        assert database["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"
        secrets = rendered.one("Secret", f"{RELEASE_PREFIX}-secrets")
        assert base64.b64decode(secrets["data"]["CP_SECRET_KEY"]).decode() == SESSION_KEY
        for _, spec in pod_specs(rendered):
            env = env_of(spec["containers"][0])
            assert env["CP_DATABASE_URL"] == {
                "secretKeyRef": {"name": f"{RELEASE_PREFIX}-database", "key": "url"}
            }

    def test_a_generated_session_key_is_rendered_only_into_a_secret(self) -> None:
        rendered = render()
        secrets = rendered.one("Secret", f"{RELEASE_PREFIX}-secrets")
        key = base64.b64decode(secrets["data"]["CP_SECRET_KEY"]).decode()
        assert len(key) == 64
        assert key not in json.dumps([d for d in rendered.all if d["kind"] != "Secret"])

    def test_existing_secrets_are_referenced_not_rendered(self) -> None:
        rendered = render(cnpg_values())
        assert rendered.kind("Secret") == []
        for _, spec in pod_specs(rendered):
            container = spec["containers"][0]
            assert env_of(container)["CP_DATABASE_URL"] == {
                "secretKeyRef": {"name": "cp-db-app", "key": "uri"}
            }
        api = rendered.one("Deployment", f"{RELEASE_PREFIX}-api")
        env_from = api["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"secretRef": {"name": "control-plane-secrets"}} in env_from

    def test_a_secret_looking_setting_in_config_is_refused(self) -> None:
        need_peer(helm_missing())
        with pytest.raises(AssertionError, match="looks like a secret"):
            _render(json.dumps({"config": {"CP_STRIPE_API_KEY": "sk_live_x"}}))


class TestCloudNativePgExample:
    def test_cluster_manifest_has_the_shape_the_operator_expects(self) -> None:
        docs = list(yaml.safe_load_all((CHART / "examples" / "cnpg-cluster.yaml").read_text()))
        cluster, backup = docs
        assert (cluster["apiVersion"], cluster["kind"]) == ("postgresql.cnpg.io/v1", "Cluster")
        assert set(cluster) == {"apiVersion", "kind", "metadata", "spec"}
        assert cluster["spec"]["instances"] >= 3
        assert cluster["spec"]["storage"]["size"]
        assert cluster["spec"]["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
        assert backup["kind"] == "ScheduledBackup"
        assert backup["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
        # the values file reads the Secret the operator writes for this cluster
        assert cnpg_values()["database"]["existingSecret"] == f"{cluster['metadata']['name']}-app"


class TestDockerfile:
    """The image cannot be built here (no Docker daemon): its structure is checked."""

    text = (REPO / "Dockerfile").read_text()

    def stages(self) -> list[list[str]]:
        stages: list[list[str]] = []
        for line in self.text.splitlines():
            if line.startswith("FROM "):
                stages.append([])
            if stages and line.strip() and not line.lstrip().startswith("#"):
                stages[-1].append(line)
        return stages

    def test_is_multi_stage_and_the_runtime_has_no_build_tools(self) -> None:
        builder, runtime = self.stages()
        assert builder[0].endswith(" AS builder")
        assert runtime[0].endswith(" AS runtime")
        assert "slim" in runtime[0]
        runtime_text = "\n".join(runtime)
        assert "build-essential" not in runtime_text
        assert "gcc" not in runtime_text
        assert "COPY --from=builder /opt/venv /opt/venv" in runtime_text
        assert not any(line.startswith("COPY control_plane") for line in runtime)

    def test_runs_as_a_fixed_non_root_user_with_healthcheck_and_entrypoint(self) -> None:
        runtime = self.stages()[-1]
        (user,) = [line for line in runtime if line.startswith("USER ")]
        assert "10001" in "\n".join(runtime)
        assert user.split()[1].split(":")[0] not in {"0", "root"}
        assert any(line.startswith("HEALTHCHECK ") for line in runtime)
        assert "/healthz" in "\n".join(runtime)
        assert any(line.startswith("ENTRYPOINT ") and "cpctl" in line for line in runtime)
        assert 'CMD ["serve"]' in runtime

    def test_bakes_in_no_secret(self) -> None:
        lowered = self.text.lower()
        for word in ("password", "secret_key", "database_url", "api_key", "token"):
            assert f"cp_{word}" not in lowered
            assert f"{word}=" not in lowered
        assert "ARG CP_SECRET" not in self.text
        ignored = (REPO / ".dockerignore").read_text().splitlines()
        assert {"var", ".git", ".venv"} <= set(ignored)
