"""When a refused request would fit: replay the known ends of other tenancies.

Capacity frees when a lease ends (``ends_at``) or when a release under way finishes. The
forecast gives back, in order of when they end, the GPUs of tenancies that will end, and
asks the placement engine after each step whether the request fits; the first moment it
does is the answer. Tenancies with no end are assumed to stay, so "no forecast" means
"not before someone releases by hand".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.inventory.capacity import NodeCapacity
from control_plane.placement import Placement, Request, place
from control_plane.tenancies import claims
from control_plane.tenancies.claims import Share
from control_plane.tenancies.lifecycle import TenancyState
from control_plane.tenancies.models import GpuAllocation, Tenancy

__all__ = ["Forecast", "when_it_fits"]

# At most this many distinct end times are tried (each is one placement call).
MAX_STEPS = 48
_ENDING = (TenancyState.RELEASING, TenancyState.CLEANING)
_HOLDING = (TenancyState.PROVISIONING, TenancyState.ACTIVE)


@dataclass(frozen=True, slots=True)
class Forecast:
    at: datetime | None  # None: as soon as releases under way finish
    region: str

    def suggestion(self) -> str:
        if self.at is None:
            return f"capacity being released now in {self.region} will fit it within minutes"
        when = self.at.strftime("%Y-%m-%d %H:%M UTC")
        return f"capacity in {self.region} frees by {when}, when leases end"


async def when_it_fits(
    db: AsyncSession,
    nodes: Sequence[NodeCapacity],
    requests: Sequence[Request],
) -> Forecast | None:
    """The earliest moment one of ``requests`` (one per region, in preference order)
    would be placed, counting only tenancies that will end; None if no known end helps."""
    if not nodes or not requests:
        return None
    by_id = {n.id: n for n in nodes}
    rows = await db.execute(
        select(Tenancy.state, Tenancy.ends_at, GpuAllocation.gpu_id, GpuAllocation.node_id,
               GpuAllocation.milli)
        .join(GpuAllocation, GpuAllocation.tenancy_id == Tenancy.id)
        .where(
            GpuAllocation.released_at.is_(None),
            GpuAllocation.node_id.in_(list(by_id)),
            (Tenancy.state.in_([s.value for s in _ENDING]))
            | (Tenancy.state.in_([s.value for s in _HOLDING]) & Tenancy.ends_at.is_not(None)),
        )
    )  # fmt: skip
    soon: list[Share] = []
    later: dict[datetime, list[Share]] = {}
    for state, ends_at, gpu_id, node_id, milli in rows:
        share = Share(gpu_id, node_id, milli)
        if state in _ENDING:
            soon.append(share)
        elif ends_at is not None:
            later.setdefault(ends_at, []).append(share)
    freed: list[Share] = []
    steps: list[tuple[datetime | None, list[Share]]] = [(None, soon)] if soon else []
    steps += sorted(later.items(), key=lambda item: item[0])[:MAX_STEPS]
    used = await claims.used_milli(db, nodes) if steps else {}  # read once, replayed below
    for at, shares in steps:
        freed += shares
        states = claims.node_states(nodes, used, freed)
        for request in requests:
            in_region = [s for s in states if s.region in request.regions]
            if isinstance(place(in_region, request), Placement):
                return Forecast(at, request.regions[0])
    return None
