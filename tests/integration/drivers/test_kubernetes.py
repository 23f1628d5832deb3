"""The ``kubernetes`` driver against an in-process fake API server (no real one can run
here), or against a real cluster when ``CP_TEST_KUBECONFIG`` names a kubeconfig.

With the fake, every request the driver makes is checked (verb, path, bearer token, the
server-side apply's content type, field manager and force flag, JSON TokenRequest) and a
test fails on any violation. Against a real cluster the assertions that read the fake's
memory are skipped; see docs/drivers/kubernetes.md for running it on kind.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from control_plane.ids import new_id
from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import (
    AllocatedNode,
    Allocation,
    Credential,
    IssuesCredentials,
    PermanentError,
    Resizable,
    RetryableError,
    StepResult,
    TenancyKind,
)
from control_plane.tenancies.drivers.kubernetes.driver import KubernetesDriver
from control_plane.tenancies.drivers.kubernetes.manifests import namespace_name
from control_plane.tenancies.drivers.registry import Drivers
from tests.fixtures.peers.fake_apiserver import ADMIN_TOKEN, FakeApiServer
from tests.integration.drivers.contract import DriverContract, ResizableContract, converge

REGION = "ca-qc-1"
TOKEN_SECRET = "k8s/ca-qc-1"
REAL_KUBECONFIG = os.environ.get("CP_TEST_KUBECONFIG")
OBJECTS = {
    ("resourcequotas", "gpus"), ("limitranges", "defaults"),
    ("networkpolicies", "default-deny"), ("networkpolicies", "allow-same-namespace"),
    ("serviceaccounts", "tenant"), ("roles", "tenant"), ("rolebindings", "tenant"),
}  # fmt: skip
WORKSPACE = {("persistentvolumeclaims", "workspace-home"), ("pods", "workspace"),
             ("services", "workspace")}  # fmt: skip


@dataclass(frozen=True)
class Target:
    """Where the driver goes: the fake (``fake`` set) or a real cluster."""

    server: str
    token: str
    ca_file: Path | None
    fake: FakeApiServer | None


def _real_target(tmp_path: Path) -> Target:
    """Server, CA and token of the kubeconfig's current context (token: the user's, or
    ``CP_TEST_KUBE_TOKEN`` for kind's certificate users)."""
    assert REAL_KUBECONFIG
    document = yaml.safe_load(Path(REAL_KUBECONFIG).read_text())
    context = next(c["context"] for c in document["contexts"]
                   if c["name"] == document["current-context"])  # fmt: skip
    cluster = next(c["cluster"] for c in document["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in document["users"] if u["name"] == context["user"])
    ca_file = None
    if "certificate-authority-data" in cluster:
        ca_file = tmp_path / "ca.pem"
        ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    token = os.environ.get("CP_TEST_KUBE_TOKEN") or user.get("token", "")
    return Target(cluster["server"], token, ca_file, None)


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    if REAL_KUBECONFIG:
        yield _real_target(tmp_path)
        return
    fake = FakeApiServer()
    url = fake.start()
    try:
        yield Target(url, ADMIN_TOKEN, None, fake)
        assert fake.violations == [], fake.violations
    finally:
        fake.stop()


@pytest.fixture
def fake(target: Target) -> FakeApiServer:
    """The fake API server; tests reading its memory skip against a real cluster."""
    if target.fake is None:
        pytest.skip("reads the fake API server's memory")
    return target.fake


def _settings(target: Target, tmp_path: Path) -> Settings:
    cluster: dict[str, Any] = {
        "server": target.server, "token_secret": TOKEN_SECRET, "version": "1.31",
        "gpu_products": {"h100-sxm": "NVIDIA-H100-80GB-HBM3"},
    }  # fmt: skip
    if target.ca_file:
        cluster["ca_file"] = str(target.ca_file)
    return Settings(
        key_dir=tmp_path / "keys",
        drivers={f"{REGION}/kubernetes": "kubernetes"},
        kubernetes_clusters={REGION: cluster},
        kubernetes_request_timeout_seconds=5,
    )


class _Paced(KubernetesDriver):
    """Against a real cluster a namespace takes seconds to go: pause between polls."""

    async def release(self, allocation: Allocation) -> StepResult:
        return await self._paced(await super().release(allocation))

    async def clean(self, allocation: Allocation) -> StepResult:
        return await self._paced(await super().clean(allocation))

    async def provision(self, allocation: Allocation) -> StepResult:
        return await self._paced(await super().provision(allocation))

    async def _paced(self, result: StepResult) -> StepResult:
        if not result.done:
            await asyncio.sleep(2)
        return result


@pytest.fixture
def driver(target: Target, tmp_path: Path) -> KubernetesDriver:
    async def reveal(name: str, reason: str) -> bytes:
        assert name == TOKEN_SECRET
        return target.token.encode()

    built = Drivers(_settings(target, tmp_path), reveal).for_tenancy(REGION, TenancyKind.KUBERNETES)
    assert isinstance(built, KubernetesDriver)
    if target.fake is None:
        return _Paced(config=built.config, reveal_secret=reveal)
    return built


def _allocation(tenancy_id: str, gpus: int, **workload: Any) -> Allocation:
    return Allocation(
        tenancy_id=tenancy_id, org_id="org_contract", region=REGION,
        kind=TenancyKind.KUBERNETES, gpu_model="h100-sxm",
        nodes=(AllocatedNode(node_id="node_1", hostname="gpu-001", bmc_endpoint="",
                             rack="r1", gpu_indices=tuple(range(gpus))),),
        workload=workload,
    )  # fmt: skip


async def _teardown(driver: KubernetesDriver, allocation: Allocation) -> None:
    if (await driver.describe(allocation)).exists:
        await converge(driver.release, allocation)


@pytest.fixture
async def allocation(driver: KubernetesDriver) -> AsyncIterator[Allocation]:
    made = _allocation(new_id("ten"), 2)
    yield made
    await _teardown(driver, made)


@pytest.fixture
async def workspace(driver: KubernetesDriver) -> AsyncIterator[Allocation]:
    made = _allocation(new_id("ten"), 2, preset="jupyter", idle_minutes=30)
    yield made
    await _teardown(driver, made)


@pytest.fixture
def resized(allocation: Allocation) -> Allocation:
    return _allocation(allocation.tenancy_id, 6)


@pytest.fixture
def side_effects(target: Target, driver: KubernetesDriver) -> Any:
    """Objects created or changed, deletes and tokens issued, counted by the fake; against
    a real cluster, the UIDs and resource versions of the tenancy's objects."""

    async def read(allocation: Allocation) -> dict[str, Any]:
        ns = namespace_name(allocation)
        if target.fake is not None:
            return target.fake.counts(ns)
        return await asyncio.to_thread(_real_versions, target, ns)

    return read


def _real_versions(target: Target, ns: str) -> dict[str, Any]:
    configuration = k8s.Configuration(
        host=target.server, api_key={"BearerToken": target.token},
        api_key_prefix={"BearerToken": "Bearer"},
        ssl_ca_cert=str(target.ca_file) if target.ca_file else None,
    )  # fmt: skip
    core = k8s.CoreV1Api(k8s.ApiClient(configuration))
    try:
        quota = core.read_namespaced_resource_quota("gpus", ns)
        account = core.read_namespaced_service_account("tenant", ns)
    except ApiException as exc:
        return {"status": exc.status}
    return {
        "quota": quota.metadata.resource_version,
        "account": (account.metadata.uid, account.metadata.resource_version),
    }


def _tenant_api(credential: Credential) -> k8s.CoreV1Api:
    document = yaml.safe_load(credential.value)
    return k8s.CoreV1Api(k8s_config.new_client_from_config_dict(document))


def _can_list_pods(credential: Credential) -> bool:
    namespace = yaml.safe_load(credential.value)["contexts"][0]["context"]["namespace"]
    try:
        _tenant_api(credential).list_namespaced_pod(namespace)
    except ApiException as exc:
        if exc.status != 401:
            raise
        return False
    return True


class TestKubernetesDriver(DriverContract, ResizableContract):
    async def test_is_a_real_driver_chosen_from_settings(self, driver: KubernetesDriver) -> None:
        assert (driver.name, driver.kind, driver.simulated) == (
            "kubernetes", TenancyKind.KUBERNETES, False,
        )  # fmt: skip
        assert isinstance(driver, Resizable)
        assert isinstance(driver, IssuesCredentials)

    async def test_provision_applies_every_object_server_side(
        self, driver: KubernetesDriver, allocation: Allocation, fake: FakeApiServer
    ) -> None:
        result = await converge(driver.provision, allocation)
        ns = namespace_name(allocation)
        assert ns in fake.namespaces
        stored = {(plural, name) for plural, where, name in fake.objects if where == ns}
        assert stored == OBJECTS
        patches = [r for r in fake.requests if r.method == "PATCH"]
        assert len(patches) == len(OBJECTS) + 1
        assert patches[0].path == f"/api/v1/namespaces/{ns}"  # the namespace first
        for request in patches:
            assert request.headers["content-type"] == "application/apply-patch+yaml"
            assert request.query == {"fieldManager": "gpu-control-plane", "force": "true"}
        assert all(r.headers["authorization"] == f"Bearer {ADMIN_TOKEN}" for r in fake.requests)
        quota = fake.object("resourcequotas", ns, "gpus")
        assert quota is not None
        assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "2"
        assert result.facts["namespace"] == ns
        assert result.facts["group"] == "cp:org:org_contract"

    async def test_provision_issues_the_first_kubeconfig_once(
        self, driver: KubernetesDriver, allocation: Allocation, side_effects: Any
    ) -> None:
        first = await converge(driver.provision, allocation)
        assert first.credential is not None
        assert first.credential.kind == "kubeconfig"
        again = await driver.provision(allocation)
        assert again.done
        assert again.credential is None
        assert _can_list_pods(first.credential)

    async def test_kubeconfig_names_the_server_namespace_and_token(
        self, driver: KubernetesDriver, allocation: Allocation, target: Target
    ) -> None:
        await converge(driver.provision, allocation)
        credential = await driver.issue_credentials(allocation, rotate=False)
        document = yaml.safe_load(credential.value)
        assert document["kind"] == "Config"
        assert document["clusters"][0]["cluster"]["server"] == target.server
        context = document["contexts"][0]["context"]
        assert context["namespace"] == namespace_name(allocation)
        assert document["current-context"] == document["contexts"][0]["name"]
        token = document["users"][0]["user"]["token"]
        assert token
        assert token != target.token
        assert credential.expires_at.tzinfo is not None
        if target.fake is not None:
            assert target.fake.token_works(token)
            token_requests = [r for r in target.fake.requests if r.path.endswith("/token")]
            assert token_requests[-1].headers["content-type"].startswith("application/json")

    async def test_rotate_invalidates_every_earlier_token(
        self, driver: KubernetesDriver, allocation: Allocation
    ) -> None:
        provisioned = await converge(driver.provision, allocation)
        assert provisioned.credential is not None
        earlier = await driver.issue_credentials(allocation, rotate=False)
        rotated = await driver.issue_credentials(allocation, rotate=True)
        assert _can_list_pods(rotated)
        assert not _can_list_pods(earlier)
        assert not _can_list_pods(provisioned.credential)
        assert (await driver.describe(allocation)).ready

    async def test_release_waits_for_the_namespace_to_go(
        self, driver: KubernetesDriver, allocation: Allocation, fake: FakeApiServer
    ) -> None:
        await converge(driver.provision, allocation)
        ns = namespace_name(allocation)
        steps = [await driver.release(allocation) for _ in range(4)]
        assert [s.done for s in steps] == [False, False, False, True]
        assert "waiting for namespace" in steps[0].detail
        deletes = [r for r in fake.requests if r.method == "DELETE"]
        assert [r.path for r in deletes] == [f"/api/v1/namespaces/{ns}"]  # deleted once
        assert ns not in fake.namespaces
        assert not any(where == ns for _, where, _ in fake.objects)

    async def test_provision_waits_while_the_old_namespace_terminates(
        self, driver: KubernetesDriver, allocation: Allocation, fake: FakeApiServer
    ) -> None:
        await converge(driver.provision, allocation)
        await driver.release(allocation)  # deleting, not gone yet
        waiting = await driver.provision(allocation)
        assert not waiting.done
        assert "old namespace" in waiting.detail
        assert (await converge(driver.provision, allocation)).credential is not None
        assert (await driver.describe(allocation)).ready

    async def test_resize_reapplies_the_quota(
        self, driver: KubernetesDriver, allocation: Allocation, resized: Allocation,
        fake: FakeApiServer,
    ) -> None:  # fmt: skip
        await converge(driver.provision, allocation)
        assert (await driver.resize(resized, allocation)).done
        quota = fake.object("resourcequotas", namespace_name(allocation), "gpus")
        assert quota is not None
        assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "6"
        assert quota["spec"]["hard"]["requests.cpu"] == "96"
        assert not (await driver.describe(allocation)).ready  # 2 GPUs asked, quota is 6


class TestWorkspacePreset:
    async def test_workspace_objects_only_with_the_preset(
        self, driver: KubernetesDriver, allocation: Allocation, workspace: Allocation,
        fake: FakeApiServer,
    ) -> None:  # fmt: skip
        await converge(driver.provision, allocation)
        plain = {(p, n) for p, where, n in fake.objects if where == namespace_name(allocation)}
        assert plain == OBJECTS
        result = await converge(driver.provision, workspace)
        ns = namespace_name(workspace)
        stored = {(p, n) for p, where, n in fake.objects if where == ns}
        assert stored == OBJECTS | WORKSPACE
        pod = fake.object("pods", ns, "workspace")
        assert pod is not None
        container = pod["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert "--ServerApp.shutdown_no_activity_timeout=1800" in container["args"]
        assert pod["spec"]["restartPolicy"] == "Never"
        assert result.facts["workspace"] == f"kubectl -n {ns} port-forward svc/workspace 8888:8888"

    async def test_busy_only_while_the_workspace_runs(
        self, driver: KubernetesDriver, workspace: Allocation, fake: FakeApiServer
    ) -> None:
        """The idle chain's last link: Jupyter exited, the pod Succeeded, busy=False."""
        await converge(driver.provision, workspace)
        ns = namespace_name(workspace)
        assert (await driver.describe(workspace)).busy is False  # Pending
        fake.set_pod_phase(ns, "workspace", "Running")
        running = await driver.describe(workspace)
        assert (running.busy, running.ready) == (True, True)
        assert "workspace Running" in running.detail
        fake.set_pod_phase(ns, "workspace", "Succeeded")
        assert (await driver.describe(workspace)).busy is False
        before = fake.counts(ns)
        assert (await driver.provision(workspace)).done  # does not restart a stopped workspace
        assert fake.counts(ns) == before

    async def test_resize_replaces_the_workspace_pod(
        self, driver: KubernetesDriver, workspace: Allocation, fake: FakeApiServer
    ) -> None:
        await converge(driver.provision, workspace)
        bigger = _allocation(workspace.tenancy_id, 4, **workspace.workload)
        first = await driver.resize(bigger, workspace)
        assert not first.done
        assert (await driver.resize(bigger, workspace)).done
        pod = fake.object("pods", namespace_name(workspace), "workspace")
        assert pod is not None
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"


class TestValidation:
    async def test_fractional_gpus_are_refused(
        self, driver: KubernetesDriver, allocation: Allocation
    ) -> None:
        node = replace(allocation.nodes[0], gpu_milli=500)
        with pytest.raises(PermanentError, match="whole GPUs"):
            await driver.validate(replace(allocation, nodes=(node,)))

    async def test_an_unknown_preset_is_refused(
        self, driver: KubernetesDriver, allocation: Allocation
    ) -> None:
        with pytest.raises(PermanentError, match="preset"):
            await driver.validate(replace(allocation, workload={"preset": "vscode"}))
        with pytest.raises(PermanentError, match="idle_minutes"):
            await driver.validate(replace(allocation, workload={"preset": "jupyter"}))

    async def test_another_kind_or_region_is_refused(
        self, driver: KubernetesDriver, allocation: Allocation
    ) -> None:
        with pytest.raises(PermanentError, match="namespaces"):
            await driver.validate(replace(allocation, kind=TenancyKind.VM))
        with pytest.raises(PermanentError, match="se-sto-1"):
            await driver.validate(replace(allocation, region="se-sto-1"))

    async def test_a_tenancy_id_that_cannot_name_a_namespace_is_refused(
        self, driver: KubernetesDriver, allocation: Allocation
    ) -> None:
        with pytest.raises(PermanentError, match="cannot name a namespace"):
            await driver.validate(replace(allocation, tenancy_id="ten with spaces"))


class TestUnreachableServer:
    @pytest.fixture
    def dead_driver(self, tmp_path: Path) -> KubernetesDriver:
        target = Target("http://127.0.0.1:9", ADMIN_TOKEN, None, None)

        async def reveal(name: str, reason: str) -> bytes:
            return ADMIN_TOKEN.encode()

        built = Drivers(_settings(target, tmp_path), reveal).for_tenancy(
            REGION, TenancyKind.KUBERNETES
        )
        assert isinstance(built, KubernetesDriver)
        return built

    async def test_health_says_the_server_is_down(self, dead_driver: KubernetesDriver) -> None:
        health = await dead_driver.health()
        assert not health.ok
        assert "127.0.0.1:9" in health.detail

    async def test_steps_fail_retryably(self, dead_driver: KubernetesDriver) -> None:
        allocation = _allocation(new_id("ten"), 1)
        with pytest.raises(RetryableError):
            await dead_driver.describe(allocation)
        with pytest.raises(RetryableError):
            await dead_driver.provision(allocation)

    async def test_a_missing_token_secret_fails_for_good(self, tmp_path: Path) -> None:
        target = Target("http://127.0.0.1:9", ADMIN_TOKEN, None, None)
        driver = Drivers(_settings(target, tmp_path)).for_tenancy(REGION, TenancyKind.KUBERNETES)
        with pytest.raises(PermanentError, match=TOKEN_SECRET):
            await driver.describe(_allocation(new_id("ten"), 1))
