"""How a tenancy reads in the API and portal, and the Allocation its driver is given."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.inventory.capacity import NodeHardware, capacity_nodes, node_hardware
from control_plane.tenancies import repository
from control_plane.tenancies.drivers.base import AllocatedNode, Allocation, TenancyKind
from control_plane.tenancies.models import GpuAllocation, Tenancy
from control_plane.tenancies.schemas import AllocationRead, TenancyRead, Workspace


async def tenancy_read(db: AsyncSession, tenancy: Tenancy) -> TenancyRead:
    return (await tenancy_reads(db, [tenancy]))[0]


async def tenancy_reads(db: AsyncSession, tenancies: Sequence[Tenancy]) -> list[TenancyRead]:
    """Many tenancies as read, in their order, in one query whatever their number (the GPUs
    they hold, with their nodes' hostnames): a list page of 100 does not run 300 queries."""
    return reads_holding(tenancies, await repository.live_holdings(db, [t.id for t in tenancies]))


def reads_holding(
    tenancies: Sequence[Tenancy], holdings: Iterable[Row[str, str, str, int, int]]
) -> list[TenancyRead]:
    """The tenancies as read, with the GPUs ``holdings`` (``repository.live_holdings``
    rows) says they hold."""
    held: dict[str, dict[str, AllocationRead]] = {}
    for tenancy_id, node_id, hostname, index, milli in holdings:
        on_node = held.setdefault(tenancy_id, {})
        if node_id not in on_node:
            on_node[node_id] = AllocationRead(node_id, hostname, gpu_indices=[], gpu_milli=milli)
        on_node[node_id].gpu_indices.append(index)
    return [_read(t, list(held.get(t.id, {}).values())) for t in tenancies]


def _read(tenancy: Tenancy, allocations: list[AllocationRead]) -> TenancyRead:
    return TenancyRead(
        id=tenancy.id, org_id=tenancy.org_id, project_id=tenancy.project_id, name=tenancy.name,
        kind=TenancyKind(tenancy.kind), region=tenancy.region_code,
        gpu_model=tenancy.gpu_model_code, shape=tenancy.shape,
        gpus_per_node=tenancy.gpus_per_node, node_count=tenancy.node_count,
        gpu_count=tenancy.gpus_per_node * tenancy.node_count, state=tenancy.state,
        failure_reason=tenancy.failure_reason, driver=tenancy.driver,
        simulated=tenancy.simulated, facts=dict(tenancy.facts), image=tenancy.image,
        ssh_public_keys=list(tenancy.ssh_public_keys), labels=dict(tenancy.labels),
        ends_at=tenancy.ends_at, idle_release_minutes=tenancy.idle_release_minutes,
        allocations=allocations,
        created_by=tenancy.created_by, created_at=tenancy.created_at,
        state_changed_at=tenancy.state_changed_at, activated_at=tenancy.activated_at,
        released_at=tenancy.released_at,
        pending_resize=tenancy.applied_generation != tenancy.generation,
        last_error=tenancy.last_error,
        stuck_since=tenancy.stuck_since,
        managed_by=tenancy.managed_by,
        workspace=_workspace(tenancy),
    )  # fmt: skip


async def allocation_of(
    db: AsyncSession, tenancy: Tenancy, allocations: Sequence[GpuAllocation]
) -> Allocation:
    """The driver's view of the tenancy over the given allocation rows."""
    by_node: dict[str, list[GpuAllocation]] = {}
    for row in allocations:
        by_node.setdefault(row.node_id, []).append(row)
    nodes = {n.id: n for n in await capacity_nodes(db, node_ids=list(by_node))}
    hardware = await node_hardware(db, list(by_node)) if _needs_hardware(tenancy) else {}
    whole = tenancy.kind == TenancyKind.BARE_METAL
    return Allocation(
        tenancy_id=tenancy.id,
        org_id=tenancy.org_id,
        region=tenancy.region_code,
        kind=TenancyKind(tenancy.kind),
        gpu_model=tenancy.gpu_model_code,
        nodes=tuple(
            AllocatedNode(
                node_id=node_id, hostname=nodes[node_id].hostname,
                bmc_endpoint=nodes[node_id].bmc_endpoint, rack=nodes[node_id].rack,
                gpu_indices=tuple(sorted(r.gpu_index for r in rows)),
                gpu_milli=rows[0].milli, whole_node=whole,
                **_layout(hardware.get(node_id), sorted(r.gpu_index for r in rows)),
            )
            for node_id, rows in sorted(by_node.items(), key=lambda kv: nodes[kv[0]].hostname)
        ),
        image=tenancy.image,
        ssh_public_keys=tuple(tenancy.ssh_public_keys),
        labels=dict(tenancy.labels),
        workload=dict(tenancy.workload or {}),
    )  # fmt: skip


def _needs_hardware(tenancy: Tenancy) -> bool:
    """Only VMs pass GPUs through and pin CPUs: other kinds skip the extra query."""
    return tenancy.kind == TenancyKind.VM


def _layout(hardware: NodeHardware | None, indices: list[int]) -> dict[str, Any]:
    if hardware is None:
        return {}
    return {
        "gpu_pci_addresses": tuple(hardware.pci_addresses.get(i) for i in indices),
        "gpu_numa_nodes": tuple(hardware.numa_nodes.get(i) for i in indices),
        "numa_cpus": dict(hardware.numa_cpus),
    }


def _workspace(tenancy: Tenancy) -> Workspace | None:
    workload = tenancy.workload or {}
    if tenancy.managed_by is not None or workload.get("preset") != "jupyter":
        return None
    return Workspace(preset="jupyter", idle_minutes=int(workload.get("idle_minutes", 60)))
