"""What placement needs to know about nodes: where they are, their GPUs, whether new work
may land on them. Other domains read nodes through this, never through the tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.inventory.lifecycle import NodeState
from control_plane.inventory.models import Gpu, GpuModel, Node, Region

__all__ = ["GpuSlotInfo", "NodeCapacity", "capacity_nodes", "gpu_memory_gib", "region_currencies"]


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
    """Nodes (with their GPUs by index) matching every filter given, by hostname."""
    query = select(Node, Gpu).join(Gpu, Gpu.node_id == Node.id)
    if regions is not None:
        query = query.where(Node.region_code.in_(list(regions)))
    if gpu_models:
        query = query.where(Node.gpu_model_code.in_(list(gpu_models)))
    if node_ids is not None:
        query = query.where(Node.id.in_(list(node_ids)))
    rows = (await db.execute(query.order_by(Node.hostname, Gpu.index))).all()
    nodes: dict[str, tuple[Node, list[GpuSlotInfo]]] = {}
    for node, gpu in rows:
        nodes.setdefault(node.id, (node, []))[1].append(
            GpuSlotInfo(gpu.id, gpu.index, gpu.nvlink_domain)
        )
    return [
        NodeCapacity(
            id=n.id,
            hostname=n.hostname,
            region_code=n.region_code,
            rack=n.rack,
            bmc_endpoint=n.bmc_endpoint,
            gpu_model_code=n.gpu_model_code,
            state=n.state,
            gpus=tuple(gpus),
        )
        for n, gpus in nodes.values()
    ]


async def gpu_memory_gib(db: AsyncSession) -> dict[str, int]:
    """Memory of each GPU model in the catalog."""
    rows = await db.execute(select(GpuModel.code, GpuModel.memory_gib))
    return {code: memory for code, memory in rows}


async def region_currencies(db: AsyncSession) -> dict[str, str]:
    rows = await db.execute(select(Region.code, Region.currency))
    return {code: currency for code, currency in rows}
