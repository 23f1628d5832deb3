"""Tenancies owned by another domain (an inference endpoint's replicas): how the owner
lists, re-targets and releases them. The owner has authorized its caller already."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.settings import Settings
from control_plane.tenancies.lifecycle import TenancyState
from control_plane.tenancies.models import Tenancy
from control_plane.tenancies.service import begin_release
from control_plane.tenancies.timeline import Actor, note

__all__ = ["Replica", "release", "replicas_of", "retarget"]

_GONE = (
    TenancyState.RELEASING,
    TenancyState.CLEANING,
    TenancyState.RELEASED,
    TenancyState.FAILED,
)


@dataclass(frozen=True, slots=True)
class Replica:
    tenancy_id: str
    owner: str
    state: str
    facts: Mapping[str, str]
    workload: Mapping[str, Any]
    region: str
    pending_change: bool  # a new workload not yet applied by the driver
    last_error: str | None


def _replica(t: Tenancy) -> Replica:
    return Replica(
        tenancy_id=t.id,
        owner=t.managed_by or "",
        state=t.state,
        facts=dict(t.facts),
        workload=dict(t.workload or {}),
        region=t.region_code,
        pending_change=t.generation != t.applied_generation,
        last_error=t.last_error,
    )


async def replicas_of(
    db: AsyncSession, owners: Sequence[str], *, include_gone: bool = False
) -> list[Replica]:
    """The live tenancies (or all, with ``include_gone``) of these owners, oldest first."""
    if not owners:
        return []
    query = _replicas_query(include_gone)
    rows = (await db.execute(query, {"owners": list(owners)})).scalars().all()
    return [_replica(t) for t in rows]


@lru_cache(maxsize=2)
def _replicas_query(include_gone: bool) -> Select[Tenancy]:
    """Built once (an endpoint list reads its replicas with it)."""
    query = select(Tenancy).where(Tenancy.managed_by.in_(bindparam("owners", expanding=True)))
    if not include_gone:
        query = query.where(Tenancy.state.not_in([s.value for s in _GONE]))
    return query.order_by(Tenancy.id)


async def _owned(db: AsyncSession, owner: str, tenancy_id: str) -> Tenancy | None:
    query = (
        select(Tenancy)
        .where(Tenancy.id == tenancy_id, Tenancy.managed_by == owner)
        .with_for_update()
    )
    return (await db.execute(query)).scalar_one_or_none()


async def retarget(
    db: AsyncSession,
    owner: str,
    tenancy_id: str,
    workload: Mapping[str, Any],
    *,
    actor: Actor,
    clock: Clock,
) -> bool:
    """Give the replica a new workload; the reconciler applies it through the driver.
    False when the replica is gone or already runs exactly this."""
    tenancy = await _owned(db, owner, tenancy_id)
    if tenancy is None or tenancy.state in _GONE or dict(tenancy.workload) == dict(workload):
        return False
    now = clock.now()
    tenancy.workload = dict(workload)
    tenancy.generation += 1
    tenancy.next_attempt_at = now
    tenancy.attempts = 0
    note(db, tenancy, "step", "new workload requested by its owner", actor, now)
    await db.flush()
    return True


async def release(
    db: AsyncSession,
    owner: str,
    tenancy_id: str,
    *,
    reason: str,
    actor: Actor,
    clock: Clock,
    settings: Settings,
) -> bool:
    """Hand the replica to the reconciler to take down; False when it is already going."""
    tenancy = await _owned(db, owner, tenancy_id)
    if tenancy is None or tenancy.state in _GONE:
        return False
    await begin_release(db, tenancy, actor=actor, reason=reason, at=clock.now(), settings=settings)
    return True
