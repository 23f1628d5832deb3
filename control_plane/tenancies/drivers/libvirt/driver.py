"""``libvirt``: a VM tenancy is one libvirt domain on each placed node.

Per node the driver keeps, all named after the tenancy id: a boot disk cloned from the
region's image (``<id>.qcow2`` in the disk pool), a cloud-init seed (``<id>-seed.iso``)
and the domain, sized by the GPU share, with the placed GPUs passed through by PCI
address and its vCPUs kept on the GPUs' NUMA nodes (see :mod:`.plan`, :mod:`.domain`).

Steps look at what the hypervisor holds and do only what is missing: a domain whose
metadata fingerprint matches the placement is left alone, one that differs (a resize) is
stopped, undefined and defined again on the same disk. ``release`` shuts the guests down
(ACPI, then destroy after ``CP_LIBVIRT_SHUTDOWN_GRACE_SECONDS``); ``clean`` undefines the
domains and wipes and deletes their volumes. Nodes run in parallel, each in a worker
thread (libvirt-python blocks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from control_plane.clock import Clock
from control_plane.tenancies.drivers.base import (
    Allocation,
    ConsoleAccess,
    DriverError,
    Health,
    Observed,
    PermanentError,
    PowerAction,
    StepResult,
    TenancyKind,
)
from control_plane.tenancies.drivers.libvirt import console, seed
from control_plane.tenancies.drivers.libvirt.config import LibvirtConfig
from control_plane.tenancies.drivers.libvirt.domain import build_domain_xml, build_volume_xml
from control_plane.tenancies.drivers.libvirt.host import Connections, Host, translated
from control_plane.tenancies.drivers.libvirt.plan import (
    VmPlan,
    check_allocation,
    domain_name,
    guest_hostname,
    plan_vm,
)
from control_plane.tenancies.drivers.registry import DriverContext

__all__ = ["LibvirtDriver", "build"]

_T = TypeVar("_T")
_GIB = 1024**3


@dataclass(frozen=True, slots=True)
class _Seen:
    """One node's domain as the hypervisor shows it."""

    hostname: str
    exists: bool
    running: bool = False
    current: bool = False  # defined from the placement's spec


@dataclass
class LibvirtDriver:
    """VMs over libvirt. Build it with :func:`build`."""

    config: LibvirtConfig
    clock: Clock = field(default_factory=Clock)
    health_hosts: Sequence[str] = ()
    name: str = "libvirt"
    kind: TenancyKind = TenancyKind.VM
    simulated: bool = False
    connections: Connections = field(default_factory=Connections)
    # (uri, domain) -> when the graceful shutdown was asked for; in memory only: after a
    # restart the guest is simply asked again.
    _stopping: dict[tuple[str, str], datetime] = field(default_factory=dict)

    # --- the driver interface ---------------------------------------------------------

    async def validate(self, allocation: Allocation) -> None:
        if allocation.kind is not TenancyKind.VM:
            raise PermanentError(f"the libvirt driver builds VM tenancies, not {allocation.kind}")
        check_allocation(allocation, self.config)
        await self._each(allocation, self._check_image)

    async def provision(self, allocation: Allocation) -> StepResult:
        check_allocation(allocation, self.config)
        done = await self._each(allocation, self._bring_up)
        if not all(done):
            return StepResult(done=False, detail="waiting for the old definition to stop")
        return StepResult(
            done=True, detail=f"VMs up on {_hosts(allocation)}", facts=self._facts(allocation)
        )

    async def resize(self, allocation: Allocation, previous: Allocation) -> StepResult:
        """Re-place: nodes left behind lose their VM; kept and new nodes get the new spec
        (a kept node's VM is redefined on its existing disk)."""
        kept = {node.hostname for node in allocation.nodes}
        dropped = tuple(node for node in previous.nodes if node.hostname not in kept)
        plans = [plan_vm(previous, node, self.config) for node in dropped]
        gone = await self._gather([asyncio.to_thread(self._tear_down_node, p) for p in plans])
        if not all(gone):
            return StepResult(done=False, detail="stopping VMs on the nodes given up")
        return await self.provision(allocation)

    async def describe(self, allocation: Allocation) -> Observed:
        seen = await self._each(allocation, self._see)
        if not any(s.exists for s in seen):
            return Observed(exists=False, ready=False, detail="no domain defined")
        problems = [_problem(s) for s in seen if _problem(s)]
        if problems:
            return Observed(exists=True, ready=False, detail="; ".join(problems))
        return Observed(
            exists=True, ready=True, detail="VMs running", facts=self._facts(allocation)
        )

    async def release(self, allocation: Allocation) -> StepResult:
        domain_name(allocation)
        stopped = await self._each(allocation, self._shut_down)
        if not all(stopped):
            return StepResult(done=False, detail="waiting for the guests to shut down")
        return StepResult(done=True, detail=f"VMs stopped on {_hosts(allocation)}")

    async def clean(self, allocation: Allocation) -> StepResult:
        domain_name(allocation)
        gone = await self._each(allocation, self._tear_down_node)
        if not all(gone):
            return StepResult(done=False, detail="waiting for the guests to shut down")
        return StepResult(done=True, detail="domains undefined, disks wiped and deleted")

    async def health(self) -> Health:
        uris = [self.config.uri_template.format(hostname=h, node_id=h, region=self.config.region)
                for h in self.health_hosts]  # fmt: skip
        problems = []
        for uri in uris:
            try:
                await asyncio.to_thread(_library_version, self.connections, uri)
            except DriverError as exc:
                problems.append(str(exc))
        if problems:
            return Health(ok=False, detail="; ".join(problems))
        return Health(ok=True, detail=f"{len(uris)} hypervisor(s) answer")

    # --- capabilities -----------------------------------------------------------------

    async def power(self, allocation: Allocation, action: PowerAction) -> StepResult:
        done = await self._each(allocation, lambda plan: self._power(plan, action))
        if not all(done):
            return StepResult(done=False, detail="waiting for the guests to shut down")
        state = "off" if action is PowerAction.STOP else "on"
        return StepResult(done=True, detail=f"power {action.value} on {_hosts(allocation)}",
                          facts={"power": state})  # fmt: skip

    async def console(self, allocation: Allocation, ttl_seconds: int) -> ConsoleAccess:
        """A link to the first node's VNC console through the proxy; nothing changes on the
        hypervisor (the domain is only looked up)."""
        if not self.config.console_url_template or not self.config.console_key:
            raise PermanentError("no console proxy configured (CP_LIBVIRT_CONSOLE_URL_TEMPLATE, "
                                 "CP_LIBVIRT_CONSOLE_KEY)")  # fmt: skip
        plan = plan_vm(allocation, allocation.nodes[0], self.config)
        seen = await asyncio.to_thread(self._see, plan)
        if not seen.running:
            raise PermanentError(f"the VM on {plan.node.hostname} is not running")
        expires_at = self.clock.now() + timedelta(seconds=ttl_seconds)
        claims = console.ConsoleClaims(
            allocation.tenancy_id, plan.spec.name, plan.node.hostname, expires_at
        )
        token = console.sign(claims, self.config.console_key)
        url = self.config.console_url_template.format(
            token=token, region=self.config.region, host=plan.node.hostname
        )
        return ConsoleAccess(url=url, protocol="vnc", expires_at=expires_at)

    # --- per node, in a worker thread -------------------------------------------------

    def _host(self, plan: VmPlan) -> Host:
        return Host(self.connections.get(plan.uri), plan.node.hostname)

    def _check_image(self, plan: VmPlan) -> None:
        host = self._host(plan)
        host.pool(self.config.disk_pool)
        host.image(self.config.image_pool, plan.image)

    def _bring_up(self, plan: VmPlan) -> bool:
        """Disk, seed, domain, running; False while an outdated domain shuts down."""
        host = self._host(plan)
        pool = host.pool(self.config.disk_pool)
        if host.volume(pool, plan.disk) is None:
            image = host.image(self.config.image_pool, plan.image)
            with translated(f"{host.hostname}: reading image {plan.image}"):
                capacity = max(image.info()[1], self.config.sizing.disk_gib * _GIB)
            host.clone(pool, build_volume_xml(plan.disk, capacity, "qcow2"), image)
        if host.volume(pool, plan.seed) is None:
            data = self._seed(plan)
            upload = data if self.config.upload_seed else None
            host.create_with(pool, build_volume_xml(plan.seed, len(data), "raw"), upload)
        domain = host.domain(plan.spec.name)
        if domain is not None and host.fingerprint(domain) != plan.spec.fingerprint:
            if not self._stop(plan, host, domain):
                return False
            host.undefine(domain)
            domain = None
        if domain is None:
            domain = host.define(build_domain_xml(plan.spec))
        with translated(f"{host.hostname}: starting {plan.spec.name}"):
            if not domain.isActive():
                domain.create()
        return True

    def _see(self, plan: VmPlan) -> _Seen:
        host = self._host(plan)
        domain = host.domain(plan.spec.name)
        if domain is None:
            return _Seen(plan.node.hostname, exists=False)
        with translated(f"{host.hostname}: reading {plan.spec.name}"):
            running = bool(domain.isActive())
        current = host.fingerprint(domain) == plan.spec.fingerprint
        return _Seen(plan.node.hostname, exists=True, running=running, current=current)

    def _shut_down(self, plan: VmPlan) -> bool:
        host = self._host(plan)
        domain = host.domain(plan.spec.name)
        return domain is None or self._stop(plan, host, domain)

    def _tear_down_node(self, plan: VmPlan) -> bool:
        """Stop and undefine the domain, wipe and delete its disk, delete its seed."""
        host = self._host(plan)
        domain = host.domain(plan.spec.name)
        if domain is not None:
            if not self._stop(plan, host, domain):
                return False
            host.undefine(domain)
        pool = host.pool(self.config.disk_pool)
        disk = host.volume(pool, plan.disk)
        if disk is not None:
            host.delete(disk, wipe=self.config.wipe_volumes)
        seed_volume = host.volume(pool, plan.seed)
        if seed_volume is not None:
            host.delete(seed_volume, wipe=False)  # public keys and a host name only
        return True

    def _stop(self, plan: VmPlan, host: Host, domain: Any) -> bool:
        """Ask the guest to shut down; destroy it once the grace period has passed.
        True when the domain is off."""
        key = (plan.uri, plan.spec.name)
        with translated(f"{host.hostname}: stopping {plan.spec.name}"):
            if not domain.isActive():
                self._stopping.pop(key, None)
                return True
            now = self.clock.now()
            asked = self._stopping.get(key)
            if asked is None:
                self._stopping[key] = asked = now
                domain.shutdown()
            grace = timedelta(seconds=self.config.shutdown_grace_seconds)
            if domain.isActive() and now - asked >= grace:
                domain.destroy()
            if domain.isActive():
                return False
        self._stopping.pop(key, None)
        return True

    def _power(self, plan: VmPlan, action: PowerAction) -> bool:
        host = self._host(plan)
        domain = host.domain(plan.spec.name)
        if domain is None:
            raise PermanentError(f"no VM on {plan.node.hostname}: provision it first")
        if action is PowerAction.STOP:
            return self._stop(plan, host, domain)
        with translated(f"{host.hostname}: power {action.value} {plan.spec.name}"):
            if not domain.isActive():
                domain.create()
            elif action is PowerAction.REBOOT:
                domain.reboot(0)
        return True

    def _seed(self, plan: VmPlan) -> bytes:
        allocation = plan.allocation
        hostname = guest_hostname(allocation, plan.node)
        return seed.seed_image(
            {
                "user-data": seed.user_data(
                    hostname=hostname,
                    user=self.config.guest_user,
                    ssh_keys=allocation.ssh_public_keys,
                ),
                "meta-data": seed.meta_data(
                    instance_id=f"{plan.spec.name}.{plan.node.node_id}", hostname=hostname
                ),
            }
        )

    # --- fan-out ----------------------------------------------------------------------

    async def _each(self, allocation: Allocation, step: Callable[[VmPlan], _T]) -> list[_T]:
        """Run ``step`` for every placed node, in parallel worker threads."""
        plans = [plan_vm(allocation, node, self.config) for node in allocation.nodes]
        return await self._gather([asyncio.to_thread(step, plan) for plan in plans])

    @staticmethod
    async def _gather(calls: Sequence[Any]) -> list[Any]:
        """Await all; every node finishes (or fails) before the first error is raised."""
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)

    def _facts(self, allocation: Allocation) -> dict[str, str]:
        name = domain_name(allocation)
        return {
            "access": "ssh",
            "user": self.config.guest_user,
            "hosts": _hosts(allocation),
            "domains": ",".join(f"{name}@{node.hostname}" for node in allocation.nodes),
            "guest_hostnames": ",".join(guest_hostname(allocation, n) for n in allocation.nodes),
            "gpus": str(allocation.gpu_count),
            "power": "on",  # reported by provision and describe only while every VM runs
        }


def _problem(seen: _Seen) -> str:
    if not seen.exists:
        return f"{seen.hostname}: no domain"
    if not seen.current:
        return f"{seen.hostname}: domain defined for another placement"
    if not seen.running:
        return f"{seen.hostname}: domain not running"
    return ""


def _library_version(connections: Connections, uri: str) -> int:
    with translated(f"{uri}: not answering"):
        return int(connections.get(uri).getLibVersion())


def _hosts(allocation: Allocation) -> str:
    return ",".join(sorted(node.hostname for node in allocation.nodes))


def build(context: DriverContext) -> LibvirtDriver:
    return LibvirtDriver(
        LibvirtConfig.from_settings(context.settings, context.region),
        health_hosts=tuple(context.settings.libvirt_health_hosts),
    )
