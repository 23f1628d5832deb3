"""What placement needs to know about nodes: where they are, their GPUs, whether new work
may land on them. Other domains read nodes through this, never through the tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.inventory.classes import class_code
from control_plane.inventory.lifecycle import NodeState
from control_plane.inventory.models import Gpu, GpuModel, Node, Region

__all__ = [
    "GpuSlotInfo",
    "NodeCapacity",
    "NodeHardware",
    "capacity_nodes",
    "gpu_memory_gib",
    "gpu_models_of_class",
    "node_hardware",
    "region_currencies",
]


@dataclass(frozen=True, slots=True)
class GpuSlotInfo:
    id: str
    index: int
    nvlink_domain: str | None


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    id: str
    hostname: str
    region_code: str
    rack: str
    bmc_endpoint: str
    gpu_model_code: str
    state: str
    gpus: tuple[GpuSlotInfo, ...]

    @property
    def schedulable(self) -> bool:
        """New work lands only on available nodes (not draining, in maintenance ...)."""
        return self.state == NodeState.AVAILABLE


async def capacity_nodes(
    db: AsyncSession,
    *,
    regions: Sequence[str] | None = None,
    gpu_models: Sequence[str] | None = None,
    node_ids: Sequence[str] | None = None,
) -> list[NodeCapacity]:
    """Nodes (with their GPUs by index) matching every filter given, by hostname.

    Reads columns, not ORM objects: placement reads every node of a region on each create,
    and building (and identity-mapping) thousands of entities cost several times the query.
    """
    query = select(
        Node.id, Node.hostname, Node.region_code, Node.rack, Node.bmc_endpoint,
        Node.gpu_model_code, Node.state, Gpu.id, Gpu.index, Gpu.nvlink_domain,
    ).join(Gpu, Gpu.node_id == Node.id)  # fmt: skip
    if regions is not None:
        query = query.where(Node.region_code.in_(list(regions)))
    if gpu_models:
        query = query.where(Node.gpu_model_code.in_(list(gpu_models)))
    if node_ids is not None:
        query = query.where(Node.id.in_(list(node_ids)))
    rows = await db.execute(query.order_by(Node.hostname, Gpu.index))
    nodes: dict[str, NodeCapacity] = {}
    gpus: dict[str, list[GpuSlotInfo]] = {}
    for node_id, hostname, region, rack, bmc, model, state, gpu_id, index, nvlink in rows:
        if node_id not in nodes:
            nodes[node_id] = NodeCapacity(node_id, hostname, region, rack, bmc, model, state, ())
            gpus[node_id] = []
        gpus[node_id].append(GpuSlotInfo(gpu_id, index, nvlink))
    return [replace(node, gpus=tuple(gpus[node.id])) for node in nodes.values()]


@dataclass(frozen=True, slots=True)
class NodeHardware:
    """Where each GPU of a node sits (PCI address, NUMA node, by GPU index) and which host
    CPUs belong to each NUMA node: what a VM needs for passthrough and pinning."""

    pci_addresses: Mapping[int, str | None]
    numa_nodes: Mapping[int, int | None]
    numa_cpus: Mapping[int, str]


async def node_hardware(db: AsyncSession, node_ids: Sequence[str]) -> dict[str, NodeHardware]:
    """The recorded hardware layout of the given nodes (not on placement's hot path)."""
    if not node_ids:
        return {}
    layout = await db.execute(select(Node.id, Node.numa_cpus).where(Node.id.in_(list(node_ids))))
    cpus = {node_id: numa_cpus for node_id, numa_cpus in layout}
    rows = await db.execute(
        select(Gpu.node_id, Gpu.index, Gpu.pci_address, Gpu.numa_node).where(
            Gpu.node_id.in_(list(node_ids))
        )
    )
    pci: dict[str, dict[int, str | None]] = {n: {} for n in cpus}
    numa: dict[str, dict[int, int | None]] = {n: {} for n in cpus}
    for node_id, index, address, numa_node in rows:
        pci[node_id][index] = address
        numa[node_id][index] = numa_node
    return {
        node_id: NodeHardware(
            pci[node_id], numa[node_id], {int(k): v for k, v in (layout or {}).items()}
        )
        for node_id, layout in cpus.items()
    }


async def gpu_models_of_class(db: AsyncSession, gpu_class: str) -> tuple[str, ...]:
    """The catalog's GPU models of one class (generation), by code."""
    rows = await db.execute(select(GpuModel.code, GpuModel.generation).order_by(GpuModel.code))
    return tuple(code for code, generation in rows if class_code(generation) == gpu_class)


async def gpu_memory_gib(db: AsyncSession) -> dict[str, int]:
    """Memory of each GPU model in the catalog."""
    rows = await db.execute(select(GpuModel.code, GpuModel.memory_gib))
    return {code: memory for code, memory in rows}


async def region_currencies(db: AsyncSession) -> dict[str, str]:
    rows = await db.execute(select(Region.code, Region.currency))
    return {code: currency for code, currency in rows}


async def region_billing_facts(db: AsyncSession) -> dict[str, tuple[str, str]]:
    """Each region's currency and jurisdiction (who sells there, in what money)."""
    rows = await db.execute(select(Region.code, Region.currency, Region.jurisdiction))
    return {code: (currency, jurisdiction) for code, currency, jurisdiction in rows}
