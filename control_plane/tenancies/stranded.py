"""Stranded capacity: free GPU share that the shapes a region offers cannot use, because it
is split across nodes (3 free GPUs on a node cannot host a 4-GPU shape) or across GPUs (a
quarter free here and there cannot host a half). Operators read it to decide what to
drain, defragment or sell as smaller shapes."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.inventory.capacity import capacity_nodes
from control_plane.placement import NodeState
from control_plane.tenancies import claims, shapes
from control_plane.tenancies.schemas import ShapeRead

__all__ = ["RegionStranded", "ShapeFit", "stranded_capacity"]


@dataclass(frozen=True, slots=True)
class ShapeFit:
    shape: str
    gpu_model: str
    gpus_per_node: int
    gpu_milli: int
    fits: int  # how many more of this shape the free capacity holds (single-node shapes)
    usable_gpus: float  # free GPUs of its model it could use
    stranded_gpus: float  # free GPUs of its model it cannot


@dataclass(frozen=True, slots=True)
class RegionStranded:
    region: str
    free_gpus: float  # on schedulable nodes
    shapes: tuple[ShapeFit, ...]

    @property
    def worst_stranded_gpus(self) -> float:
        return max((s.stranded_gpus for s in self.shapes), default=0.0)


def _fit(shape: ShapeRead, nodes: list[NodeState]) -> ShapeFit:
    """Per node (one node at a time: multi-node shapes count per node too), how many of the
    shape's per-node slices fit, and the free share left over."""
    fits = 0
    usable = free = 0
    for node in nodes:
        if node.gpu_model != shape.gpu_model or not node.schedulable:
            continue
        node_free = sum(g.free_milli for g in node.gpus)
        free += node_free
        if shape.gpu_milli >= 1000:
            whole = sum(1 for g in node.gpus if g.free_milli >= 1000)
            count = whole // shape.gpus_per_node
            usable += count * shape.gpus_per_node * 1000
        else:
            count = sum(g.free_milli // shape.gpu_milli for g in node.gpus)
            usable += count * shape.gpu_milli
        fits += count
    if shape.node_count > 1:
        fits //= shape.node_count
    return ShapeFit(shape.name, shape.gpu_model, shape.gpus_per_node, shape.gpu_milli, fits,
                    usable / 1000, (free - usable) / 1000)  # fmt: skip


async def stranded_capacity(db: AsyncSession) -> list[RegionStranded]:
    nodes = await capacity_nodes(db)
    states = await claims.free_state(db, nodes)
    by_region: dict[str, list[NodeState]] = defaultdict(list)
    for state in states:
        by_region[state.region].append(state)
    offered = defaultdict(list)
    for shape in await shapes.list_shapes(db):
        offered[shape.region].append(shape)
    result = []
    for region in sorted(by_region):
        region_nodes = by_region[region]
        free = sum(g.free_milli for n in region_nodes if n.schedulable for g in n.gpus) / 1000
        fits = tuple(_fit(s, region_nodes) for s in offered.get(region, []))
        result.append(RegionStranded(region, free, fits))
    return result
