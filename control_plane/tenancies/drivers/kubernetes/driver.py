"""``kubernetes``: a tenancy is a namespace on the region's GPU cluster.

What the namespace holds is in :mod:`.manifests` (and :mod:`.workspace` for the Jupyter
preset); this module only decides when to apply, read or delete it:

- ``provision`` applies every object, namespace first, with server-side apply (applying
  again changes nothing). It waits while an earlier namespace of the same name is still
  terminating. When this call created the tenant ServiceAccount it also issues the first
  kubeconfig (``StepResult.credential``); a repeated call finds the account and issues
  none. Should the token request fail, the fresh account is deleted again, so the next
  call creates it and issues the kubeconfig then: it is issued once, never lost.
- ``describe``: ready when the namespace is Active, the quota holds the tenancy's GPU count
  and the ServiceAccount exists; busy when any pod of the namespace is Running.
- ``release`` deletes the namespace (and so every workload and volume in it) and is done
  only once the API server answers 404 for it; ``clean`` checks it is gone.
- ``resize`` re-applies the quota with the new GPU count (a workspace pod, whose resources
  cannot change in place, is deleted first and comes back with the new count).
- ``issue_credentials`` makes a kubeconfig from a bound ServiceAccount token (TokenRequest,
  lifetime ``CP_KUBERNETES_TOKEN_TTL_SECONDS``). ``rotate`` deletes and recreates the
  ServiceAccount first: bound tokens name the account's UID, so every earlier token stops
  working.

The driver's own token is a provider secret (``token_secret``), revealed on first use and
again after the API server refuses it (401).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from control_plane.tenancies.drivers.base import (
    Allocation,
    Credential,
    DriverError,
    Health,
    Observed,
    PermanentError,
    StepResult,
    TenancyKind,
)
from control_plane.tenancies.drivers.kubernetes import manifests as m
from control_plane.tenancies.drivers.kubernetes.cluster import Cluster
from control_plane.tenancies.drivers.kubernetes.config import ClusterConfig
from control_plane.tenancies.drivers.kubernetes.kubeconfig import build_kubeconfig
from control_plane.tenancies.drivers.kubernetes.workspace import (
    POD,
    WorkspacePreset,
    workspace_facts,
    workspace_manifests,
)
from control_plane.tenancies.drivers.registry import DriverContext, RevealSecret

__all__ = ["KubernetesDriver", "build"]


def _preset(allocation: Allocation) -> WorkspacePreset | None:
    try:
        return WorkspacePreset.from_workload(allocation.workload)
    except ValueError as exc:
        raise PermanentError(str(exc)) from exc


def _namespace(allocation: Allocation) -> str:
    try:
        return m.namespace_name(allocation)
    except ValueError as exc:
        raise PermanentError(str(exc)) from exc


@dataclass
class KubernetesDriver:
    config: ClusterConfig
    reveal_secret: RevealSecret
    name: str = "kubernetes"
    kind: TenancyKind = TenancyKind.KUBERNETES
    simulated: bool = False
    _cluster: Cluster | None = field(default=None, init=False, repr=False)

    # --- the driver interface ---------------------------------------------------------

    async def validate(self, allocation: Allocation) -> None:
        if allocation.kind is not TenancyKind.KUBERNETES:
            raise PermanentError(f"the kubernetes driver builds namespaces, not {allocation.kind}")
        if allocation.region != self.config.region:
            raise PermanentError(
                f"this driver serves {self.config.region}, not {allocation.region}"
            )
        if allocation.gpu_count < 1:
            raise PermanentError("a Kubernetes tenancy needs at least one GPU")
        if any(node.gpu_milli != 1000 for node in allocation.nodes):
            raise PermanentError(
                "Kubernetes tenancies take whole GPUs: the quota counts nvidia.com/gpu, "
                "which cannot be split (no MIG or time-slicing scheme is configured)"
            )
        _namespace(allocation)
        for value in (allocation.tenancy_id, allocation.org_id, allocation.region,
                      self.config.gpu_product(allocation.gpu_model)):  # fmt: skip
            problem = m.label_value_problem(value)
            if problem:
                raise PermanentError(problem)
        _preset(allocation)

    async def provision(self, allocation: Allocation) -> StepResult:
        ns, preset = _namespace(allocation), _preset(allocation)
        cluster = await self._connect()
        phase = await cluster.namespace_phase(ns)
        if phase == "Terminating":
            return StepResult(done=False, detail=f"waiting for the old namespace {ns} to go")
        had_account = (
            phase is not None
            and await cluster.service_account_uid(ns, m.SERVICE_ACCOUNT) is not None
        )
        for manifest in self._manifests(allocation, preset):
            await cluster.apply(manifest)
        credential = None if had_account else await self._first_credential(cluster, allocation)
        return StepResult(
            done=True,
            detail=f"namespace {ns}: {allocation.gpu_count} {allocation.gpu_model} GPUs"
            + (", Jupyter workspace" if preset else ""),
            facts=self._facts(allocation, preset),
            credential=credential,
        )

    async def resize(self, allocation: Allocation, previous: Allocation) -> StepResult:
        """New quota; a workspace pod (resources fixed at creation) is recreated."""
        if _preset(allocation) and allocation.gpu_count != previous.gpu_count:
            cluster = await self._connect()
            ns = _namespace(allocation)
            pod = (await cluster.pod_phases(ns)).get(POD)
            if pod is not None:
                await cluster.delete_pod(ns, POD)
                return StepResult(done=False, detail="replacing the workspace pod")
        return await self.provision(allocation)

    async def describe(self, allocation: Allocation) -> Observed:
        ns = _namespace(allocation)
        cluster = await self._connect()
        phase = await cluster.namespace_phase(ns)
        if phase is None:
            return Observed(exists=False, ready=False, detail=f"no namespace {ns}", busy=False)
        pods = await cluster.pod_phases(ns)
        running = sorted(name for name, state in pods.items() if state == "Running")
        busy = bool(running)
        if phase != "Active":
            return Observed(exists=True, ready=False, detail=f"namespace {ns} {phase}", busy=busy)
        problems = await self._problems(cluster, allocation, ns)
        detail = "; ".join(problems) or f"namespace {ns} ready"
        if running:
            detail += f"; {len(running)} pod(s) running"
        preset = _preset(allocation)
        if preset is not None:
            detail += f"; workspace {pods.get(POD, 'absent')}"
        return Observed(
            exists=True,
            ready=not problems,
            detail=detail,
            busy=busy,
            facts={} if problems else self._facts(allocation, preset),
        )

    async def release(self, allocation: Allocation) -> StepResult:
        return await self._delete_namespace(allocation, "released")

    async def clean(self, allocation: Allocation) -> StepResult:
        return await self._delete_namespace(allocation, "gone")

    async def health(self) -> Health:
        try:
            version = await (await self._connect()).version()
        except DriverError as exc:
            return Health(ok=False, detail=f"API server {self.config.server}: {exc}")
        return Health(ok=True, detail=f"API server {self.config.server} answers ({version})")

    async def issue_credentials(self, allocation: Allocation, *, rotate: bool) -> Credential:
        ns = _namespace(allocation)
        cluster = await self._connect()
        if await cluster.namespace_phase(ns) != "Active":
            raise PermanentError(f"namespace {ns} is not active: no credential to issue")
        if rotate:
            await self._recreate_account(cluster, allocation)
        return await self._kubeconfig(cluster, allocation)

    # --- steps --------------------------------------------------------------------------

    def _manifests(
        self, allocation: Allocation, preset: WorkspacePreset | None
    ) -> list[m.Manifest]:
        objects = m.tenancy_manifests(allocation, self.config)
        if preset is not None:
            objects += workspace_manifests(allocation, self.config, preset)
        return objects

    async def _problems(self, cluster: Cluster, allocation: Allocation, ns: str) -> list[str]:
        problems = []
        hard = await cluster.quota_hard(ns, m.QUOTA)
        key = f"requests.{self.config.gpu_resource}"
        if hard is None:
            problems.append("quota missing")
        elif hard.get(key) != str(allocation.gpu_count):
            problems.append(f"quota allows {hard.get(key, 'unlimited')} GPUs")
        if await cluster.service_account_uid(ns, m.SERVICE_ACCOUNT) is None:
            problems.append("service account missing")
        return problems

    async def _delete_namespace(self, allocation: Allocation, word: str) -> StepResult:
        """Done only once the namespace is gone (its finalizers empty it first)."""
        ns = _namespace(allocation)
        cluster = await self._connect()
        phase = await cluster.namespace_phase(ns)
        if phase is None:
            return StepResult(done=True, detail=f"namespace {ns} {word}")
        if phase != "Terminating":
            await cluster.delete_namespace(ns)
        return StepResult(done=False, detail=f"waiting for namespace {ns} to go")

    async def _first_credential(self, cluster: Cluster, allocation: Allocation) -> Credential:
        try:
            return await self._kubeconfig(cluster, allocation)
        except DriverError:
            # undo, so the next attempt creates the account again and issues it then
            await cluster.delete_service_account(_namespace(allocation), m.SERVICE_ACCOUNT)
            raise

    async def _recreate_account(self, cluster: Cluster, allocation: Allocation) -> None:
        ns = _namespace(allocation)
        before = await cluster.service_account_uid(ns, m.SERVICE_ACCOUNT)
        await cluster.delete_service_account(ns, m.SERVICE_ACCOUNT)
        await cluster.apply(m.service_account(allocation))
        after = await cluster.service_account_uid(ns, m.SERVICE_ACCOUNT)
        if after is None or after == before:
            raise PermanentError(f"service account {ns}/{m.SERVICE_ACCOUNT} was not recreated")

    async def _kubeconfig(self, cluster: Cluster, allocation: Allocation) -> Credential:
        ns = _namespace(allocation)
        issued = await cluster.request_token(ns, m.SERVICE_ACCOUNT, self.config.token_ttl_seconds)
        ca = (
            await asyncio.to_thread(self.config.ca_file.read_bytes) if self.config.ca_file else None
        )
        document = build_kubeconfig(
            name=f"{self.config.region}-{ns}", server=self.config.tenant_server, ca_pem=ca,
            namespace=ns, token=issued.token,
        )  # fmt: skip
        return Credential(kind="kubeconfig", value=document, expires_at=issued.expires_at)

    def _facts(self, allocation: Allocation, preset: WorkspacePreset | None) -> dict[str, str]:
        facts = {
            "namespace": _namespace(allocation),
            "api_server": self.config.tenant_server,
            "group": m.group_name(allocation),
            "gpu_quota": f"{allocation.gpu_count} x {self.config.gpu_resource}",
        }
        if preset is not None:
            facts |= workspace_facts(allocation)
        return facts

    async def _connect(self) -> Cluster:
        """The API client, built with the driver's token (revealed again after a 401)."""
        if self._cluster is None or self._cluster.unauthorized:
            try:
                token = await self.reveal_secret(
                    self.config.token_secret, f"kubernetes API access in {self.config.region}"
                )
            except LookupError as exc:
                raise PermanentError(
                    f"no Kubernetes token for {self.config.region} "
                    f"(secret {self.config.token_secret})"
                ) from exc
            self._cluster = Cluster(self.config, token.decode().strip())
        return self._cluster


def build(context: DriverContext) -> KubernetesDriver:
    """The registry's entry point."""
    return KubernetesDriver(
        config=ClusterConfig.from_settings(context.settings, context.region),
        reveal_secret=context.reveal_secret,
    )
