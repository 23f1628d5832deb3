"""Graceful pool switches: when a pool's window enters its drain period, every tenancy on
its nodes is told (once, whichever replica runs the timer) when the pool changes hands,
and its lease is cut to end then; the lease timer releases it at the switch."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.pools import gating
from control_plane.pools.gating import Drain
from control_plane.tenancies.lifecycle import TenancyState
from control_plane.tenancies.models import GpuAllocation, Tenancy
from control_plane.tenancies.timeline import Actor, note

# Tenancies still to be told: those already on their way out need no notice.
STAYING = (TenancyState.PLACING, TenancyState.PROVISIONING, TenancyState.ACTIVE)


async def announce_drains(db: AsyncSession, at: datetime, actor: Actor) -> int:
    """Tell the tenancies on draining pools about the switch; how many were told now."""
    told = 0
    for drain in await gating.draining(db, at):
        on_pool = (
            select(GpuAllocation.tenancy_id)
            .where(GpuAllocation.node_id.in_(drain.node_ids), GpuAllocation.released_at.is_(None))
            .distinct()
        )
        query = (
            select(Tenancy)
            .where(Tenancy.id.in_(on_pool), Tenancy.state.in_([s.value for s in STAYING]))
            .order_by(Tenancy.id)
        )
        if db.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        for tenancy in (await db.execute(query)).scalars():
            if not await gating.claim_notice(db, drain.pool_id, tenancy.id, drain.switch_at, at):
                continue
            if tenancy.ends_at is None or tenancy.ends_at > drain.switch_at:
                tenancy.ends_at = drain.switch_at
            note(db, tenancy, "warning", _message(drain, tenancy), actor, at)
            told += 1
    return told


def _message(drain: Drain, tenancy: Tenancy) -> str:
    """Names the incoming holder only within the tenancy's own organization."""
    if drain.next_org_id is None:
        to = "closes"
    elif drain.next_org_id != tenancy.org_id:
        to = "switches to another organization"
    elif drain.next_project_id is None:
        to = "switches to your whole organization"
    else:
        to = f"switches to project {drain.next_project_id}"
    return (f"pool {drain.pool_name} {to} at {drain.switch_at.isoformat()}; this tenancy "
            "will be released then")  # fmt: skip
