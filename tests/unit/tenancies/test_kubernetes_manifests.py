"""The kubernetes driver's manifests: valid against the pinned API schema (strict: an
unknown field fails), with the quota, labels and placement the tenancy needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import ValidationError

from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import AllocatedNode, Allocation, TenancyKind
from control_plane.tenancies.drivers.kubernetes.config import ClusterConfig
from control_plane.tenancies.drivers.kubernetes.manifests import (
    Manifest,
    namespace_name,
    tenancy_manifests,
)
from control_plane.tenancies.drivers.kubernetes.workspace import (
    WorkspacePreset,
    jupyter_args,
    workspace_manifests,
)

SCHEMA_VERSION = "1.31"  # the API version ClusterConfig writes for by default
CONFIG = ClusterConfig(
    region="ca-qc-1", server="https://k8s.example:6443", token_secret="k8s/ca-qc-1",
    gpu_products={"h100-sxm": "NVIDIA-H100-80GB-HBM3"}, storage_class="fast",
)  # fmt: skip


def _allocation(tenancy_id: str, gpus_per_node: tuple[int, ...], **workload: Any) -> Allocation:
    return Allocation(
        tenancy_id=tenancy_id, org_id="org_01jd3x", region="ca-qc-1",
        kind=TenancyKind.KUBERNETES, gpu_model="h100-sxm",
        nodes=tuple(
            AllocatedNode(node_id=f"node_{i}", hostname=f"gpu-{i:03d}", bmc_endpoint="",
                          rack="r1", gpu_indices=tuple(range(n)))
            for i, n in enumerate(gpus_per_node)
        ),
        workload=workload,
    )  # fmt: skip


ALLOCATIONS = [
    _allocation("ten_01jd3abcdefghjkmnpqrstvwxy", (1,)),
    _allocation("ten_01jd3abcdefghjkmnpqrstvwxz", (8,)),
    _allocation("ten_01jd3abcdefghjkmnpqrstvwx0", (8, 8, 4)),
    _allocation("ten_01jd3abcdefghjkmnpqrstvwx1", (2,), preset="jupyter", idle_minutes=30),
    _allocation(
        "ten_01jd3abcdefghjkmnpqrstvwx2",
        (4, 4),
        preset="jupyter",
        idle_minutes=5,
        image="registry.example/notebook:1",
    ),
]


def _all(allocation: Allocation, config: ClusterConfig = CONFIG) -> list[Manifest]:
    objects = tenancy_manifests(allocation, config)
    preset = WorkspacePreset.from_workload(allocation.workload)
    if preset is not None:
        objects += workspace_manifests(allocation, config, preset)
    return objects


def _ids(allocation: Allocation) -> str:
    return f"{allocation.gpu_count}gpu-{'jupyter' if allocation.workload else 'plain'}"


class TestSchema:
    @pytest.mark.parametrize("allocation", ALLOCATIONS, ids=_ids)
    def test_every_object_is_valid_for_the_api_version(self, allocation: Allocation) -> None:
        for manifest in _all(allocation):
            kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)

    def test_strict_validation_rejects_an_unknown_field(self) -> None:
        """The check above would catch a misspelt field (the validator is not lenient)."""
        manifest = tenancy_manifests(ALLOCATIONS[0], CONFIG)[1]
        manifest["spec"]["hrad"] = manifest["spec"].pop("hard")
        with pytest.raises(ValidationError):
            kubernetes_validate.validate(manifest, SCHEMA_VERSION, strict=True)

    @pytest.mark.parametrize("version", ["1.29", "1.37"])
    def test_valid_on_older_and_newer_clusters(self, version: str) -> None:
        for manifest in _all(ALLOCATIONS[3]):
            kubernetes_validate.validate(manifest, version, strict=True)


class TestTenancyObjects:
    @pytest.mark.parametrize("allocation", ALLOCATIONS, ids=_ids)
    def test_every_object_carries_the_tenancy_and_org(self, allocation: Allocation) -> None:
        for manifest in _all(allocation):
            labels = manifest["metadata"]["labels"]
            assert labels["cp.example/tenancy"] == allocation.tenancy_id
            assert labels["cp.example/org"] == "org_01jd3x"
            assert labels["app.kubernetes.io/managed-by"] == "gpu-control-plane"
            if manifest["kind"] != "Namespace":
                assert manifest["metadata"]["namespace"] == namespace_name(allocation)

    def test_namespace_name_is_deterministic_and_dns_safe(self) -> None:
        allocation = ALLOCATIONS[0]
        assert namespace_name(allocation) == "cp-ten-01jd3abcdefghjkmnpqrstvwxy"
        with pytest.raises(ValueError, match="cannot name a namespace"):
            namespace_name(_allocation("ten_" + "x" * 70, (1,)))

    @pytest.mark.parametrize(
        ("gpus", "cpu", "memory"), [((1,), "16", "128Gi"), ((8, 8, 4), "320", "2560Gi")]
    )
    def test_quota_counts_the_gpus_and_scales_cpu_and_memory(
        self, gpus: tuple[int, ...], cpu: str, memory: str
    ) -> None:
        allocation = _allocation("ten_q", gpus)
        quota = next(m for m in _all(allocation) if m["kind"] == "ResourceQuota")
        assert quota["spec"]["hard"] == {
            "requests.nvidia.com/gpu": str(sum(gpus)), "requests.cpu": cpu, "limits.cpu": cpu,
            "requests.memory": memory, "limits.memory": memory, "requests.storage": "500Gi",
        }  # fmt: skip

    def test_namespace_pins_pods_to_the_region_and_gpu_model(self) -> None:
        namespace = _all(ALLOCATIONS[0])[0]
        annotations = namespace["metadata"]["annotations"]
        assert annotations["scheduler.alpha.kubernetes.io/node-selector"] == (
            "topology.kubernetes.io/region=ca-qc-1,nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3"
        )
        tolerations = json.loads(annotations["scheduler.alpha.kubernetes.io/defaultTolerations"])
        assert tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                "effect": "NoSchedule"}]  # fmt: skip
        assert (
            annotations["scheduler.alpha.kubernetes.io/tolerationsWhitelist"]
            == (annotations["scheduler.alpha.kubernetes.io/defaultTolerations"])
        )

    def test_network_is_denied_except_within_the_namespace_and_dns(self) -> None:
        policies = [m for m in _all(ALLOCATIONS[0]) if m["kind"] == "NetworkPolicy"]
        deny, allow = policies
        assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        assert allow["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]
        assert allow["spec"]["egress"][0] == {"to": [{"podSelector": {}}]}
        assert {p["port"] for p in allow["spec"]["egress"][1]["ports"]} == {53}

    def test_role_is_bound_to_the_org_group_and_the_service_account(self) -> None:
        objects = {m["kind"]: m for m in _all(ALLOCATIONS[0])}
        subjects = objects["RoleBinding"]["subjects"]
        assert {(s["kind"], s["name"]) for s in subjects} == {
            ("Group", "cp:org:org_01jd3x"), ("ServiceAccount", "tenant"),
        }  # fmt: skip
        granted = {r for rule in objects["Role"]["rules"] for r in rule["resources"]}
        assert "rolebindings" not in granted  # tenants cannot widen their own access
        quota_rule = next(r for r in objects["Role"]["rules"] if "resourcequotas" in r["resources"])
        assert quota_rule["verbs"] == ["get", "list", "watch"]

    def test_a_configured_gpu_label_and_resource_are_used(self) -> None:
        config = ClusterConfig(region="ca-qc-1", server="https://k", token_secret="t",
                               gpu_label="example.com/gpu", gpu_resource="amd.com/gpu")  # fmt: skip
        objects = {m["kind"]: m for m in _all(ALLOCATIONS[0], config)}
        assert "requests.amd.com/gpu" in objects["ResourceQuota"]["spec"]["hard"]
        selector = objects["Namespace"]["metadata"]["annotations"][
            "scheduler.alpha.kubernetes.io/node-selector"
        ]
        assert "example.com/gpu=h100-sxm" in selector  # unmapped model: its own name


class TestWorkspace:
    def test_only_with_the_preset(self) -> None:
        kinds = [m["kind"] for m in _all(ALLOCATIONS[1])]
        assert "Pod" not in kinds
        assert "PersistentVolumeClaim" not in kinds

    def test_pod_holds_the_tenancy_gpus_on_the_right_nodes_as_non_root(self) -> None:
        allocation = ALLOCATIONS[4]
        pod = next(m for m in _all(allocation) if m["kind"] == "Pod")
        spec = pod["spec"]
        container = spec["containers"][0]
        assert container["image"] == "registry.example/notebook:1"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
        assert container["resources"]["requests"]["nvidia.com/gpu"] == "8"
        assert spec["restartPolicy"] == "Never"  # an idle exit frees the GPU for good
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        expressions = {
            e["key"]: e["values"] for e in terms["nodeSelectorTerms"][0]["matchExpressions"]
        }
        assert expressions == {"topology.kubernetes.io/region": ["ca-qc-1"],
                               "nvidia.com/gpu.product": ["NVIDIA-H100-80GB-HBM3"]}  # fmt: skip
        assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
        home = next(m for m in _all(allocation) if m["kind"] == "PersistentVolumeClaim")
        assert home["spec"]["storageClassName"] == "fast"

    def test_jupyter_culls_and_exits_after_the_idle_minutes(self) -> None:
        args = jupyter_args(45)
        assert "--ServerApp.shutdown_no_activity_timeout=2700" in args
        assert "--MappingKernelManager.cull_idle_timeout=2700" in args
        assert "--MappingKernelManager.cull_connected=True" in args
        assert "--TerminalManager.cull_inactive_timeout=2700" in args

    @pytest.mark.parametrize(
        ("workload", "message"),
        [
            ({"preset": "vscode"}, "unknown workload preset"),
            ({"preset": "jupyter"}, "idle_minutes"),
            ({"preset": "jupyter", "idle_minutes": 2}, "idle_minutes"),
            ({"preset": "jupyter", "idle_minutes": True}, "idle_minutes"),
            ({"preset": "jupyter", "idle_minutes": 30, "gpus": 9}, "takes no"),
            ({"preset": "jupyter", "idle_minutes": 30, "image": ""}, "image"),
        ],
    )
    def test_a_malformed_preset_is_refused(self, workload: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            WorkspacePreset.from_workload(workload)


class TestClusterConfig:
    def test_reads_the_region_cluster(self, tmp_path: Path) -> None:
        settings = Settings(key_dir=tmp_path, kubernetes_cpu_per_gpu=8, kubernetes_clusters={
            "ca-qc-1": {"server": "https://k8s:6443/", "token_secret": "k8s/a",
                        "ca_file": "/etc/ca.pem", "public_server": "https://k8s.example"},
        })  # fmt: skip
        config = ClusterConfig.from_settings(settings, "ca-qc-1")
        assert config.server == "https://k8s:6443"
        assert config.tenant_server == "https://k8s.example"
        assert config.ca_file == Path("/etc/ca.pem")
        assert config.quotas.cpu_per_gpu == 8
        assert config.token_ttl_seconds == 8 * 3600

    @pytest.mark.parametrize(
        ("cluster", "message"),
        [
            ({"server": "https://k", "token_secret": "t", "sever": "x"}, "unknown keys"),
            ({"server": "https://k"}, "missing"),
            ({"server": "https://k", "token_secret": "t", "version": "31"}, "version"),
        ],
    )
    def test_a_bad_cluster_is_refused(
        self, tmp_path: Path, cluster: dict[str, Any], message: str
    ) -> None:
        settings = Settings(key_dir=tmp_path, kubernetes_clusters={"ca-qc-1": cluster})
        with pytest.raises(ValueError, match=message):
            ClusterConfig.from_settings(settings, "ca-qc-1")

    def test_a_region_without_a_cluster_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="no cluster"):
            ClusterConfig.from_settings(Settings(key_dir=tmp_path), "ca-qc-1")
