"""The GPU allocation ledger: what is free, and taking or giving back shares of GPUs.

Taking is one conditional upsert per GPU: it raises ``used_milli`` only if the result
stays within the GPU (and the CHECK constraint refuses anything else), so two
transactions racing for the same GPU cannot both win. PostgreSQL evaluates the condition
against the row after waiting for its lock, so the loser sees the winner's claim.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Result, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.inventory.capacity import NodeCapacity
from control_plane.placement import GpuFree, NodeState
from control_plane.tenancies.models import GpuClaim

# Placement also checks CPU and memory; tenancies take whole nodes' worth of neither yet,
# so nodes offer "plenty" of both.
_PLENTY = 1 << 40

_TAKE = text(
    "INSERT INTO gpu_claim (gpu_id, node_id, used_milli) VALUES (:gpu_id, :node_id, :milli) "
    "ON CONFLICT (gpu_id) DO UPDATE SET used_milli = gpu_claim.used_milli + excluded.used_milli "
    "WHERE gpu_claim.used_milli + excluded.used_milli <= 1000"
)
_GIVE_BACK = text(
    "UPDATE gpu_claim SET used_milli = used_milli - :milli "
    "WHERE gpu_id = :gpu_id AND used_milli >= :milli"
)


_REGION_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


async def lock_regions(db: AsyncSession, regions: Iterable[str]) -> None:
    """Place in these regions one transaction at a time (until this one ends).

    Placement is deterministic, so concurrent creates pick the same best GPUs; without
    this the losers wait for the winner's row locks, find the GPUs gone and place again,
    and every create repeats that dance. Regions are locked in name order, always after
    the organization's lock, so two callers never wait on each other in a cycle. SQLite
    runs one writer at a time anyway."""
    if db.get_bind().dialect.name != "postgresql":
        return
    for region in sorted(set(regions)):
        digest = hashlib.sha256(f"cp-gpu-region:{region}".encode()).digest()
        await db.execute(_REGION_LOCK, {"key": int.from_bytes(digest[:8], "big", signed=True)})


@dataclass(frozen=True, slots=True)
class Share:
    gpu_id: str
    node_id: str
    milli: int


async def free_state(
    db: AsyncSession, nodes: Sequence[NodeCapacity], *, returning: Iterable[Share] = ()
) -> list[NodeState]:
    """The nodes as placement sees them: each GPU's free share, schedulable or not.

    ``returning`` counts as free (a resize re-places a tenancy as if it had given its
    GPUs back)."""
    return node_states(nodes, await used_milli(db, nodes), returning)


async def used_milli(db: AsyncSession, nodes: Sequence[NodeCapacity]) -> dict[str, int]:
    """Thousandths claimed per GPU id on these nodes (GPUs with nothing claimed left out)."""
    return await _used(db, [n.id for n in nodes])


def node_states(
    nodes: Sequence[NodeCapacity], used: Mapping[str, int], returning: Iterable[Share] = ()
) -> list[NodeState]:
    """Placement's view of ``nodes`` given what is claimed, ``returning`` counted as free."""
    taken = dict(used)
    for share in returning:
        taken[share.gpu_id] = taken.get(share.gpu_id, 0) - share.milli
    return [
        NodeState(
            id=n.id,
            region=n.region_code,
            rack=n.rack,
            gpu_model=n.gpu_model_code,
            gpus=tuple(
                GpuFree(g.index, 1000 - taken.get(g.id, 0), g.nvlink_domain) for g in n.gpus
            ),
            cpu_free_milli=_PLENTY,
            memory_free_mib=_PLENTY,
            schedulable=n.schedulable,
        )
        for n in nodes
    ]


async def take(db: AsyncSession, shares: Sequence[Share]) -> bool:
    """Claim every share, or report False (the caller rolls back its savepoint)."""
    for share in shares:
        params = {"gpu_id": share.gpu_id, "node_id": share.node_id, "milli": share.milli}
        if _rowcount(await db.execute(_TAKE, params)) != 1:
            return False
    return True


async def give_back(db: AsyncSession, shares: Sequence[Share]) -> None:
    for share in shares:
        result = await db.execute(_GIVE_BACK, {"gpu_id": share.gpu_id, "milli": share.milli})
        if _rowcount(result) != 1:
            raise RuntimeError(f"GPU {share.gpu_id} gave back more than it had claimed")


def _rowcount(result: Result[Any]) -> int:
    """Rows a text INSERT/UPDATE touched (a CursorResult, whatever the static type says)."""
    return cast(CursorResult[Any], result).rowcount


async def _used(db: AsyncSession, node_ids: list[str]) -> dict[str, int]:
    if not node_ids:
        return {}
    used: dict[str, int] = {}
    for start in range(0, len(node_ids), 500):
        rows = await db.execute(
            select(GpuClaim.gpu_id, GpuClaim.used_milli).where(
                GpuClaim.node_id.in_(node_ids[start : start + 500]), GpuClaim.used_milli > 0
            )
        )
        used.update((gpu_id, milli) for gpu_id, milli in rows)
    return used
