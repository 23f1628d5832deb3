"""What pools mean for placement and for tenancies already placed: which nodes a tenancy
may land on now (and until when), and which pools are draining towards a switch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.ids import new_id
from control_plane.pools import repository, schedule
from control_plane.pools.models import PoolDrainNotice


@dataclass(frozen=True, slots=True)
class ClosedPool:
    """A pool the grantee may not use now; ``opens_at`` is when it next may (None: no
    window for it in the coming week)."""

    name: str
    opens_at: datetime | None


@dataclass
class Gate:
    """Pool rules for one grantee at one instant, over a set of candidate nodes."""

    closed: dict[str, ClosedPool] = field(default_factory=dict)  # node id -> its pool
    held_until: dict[str, datetime] = field(default_factory=dict)  # open pool node -> end

    def lease_end(self, node_ids: Sequence[str]) -> datetime | None:
        """The earliest window end among the pool nodes of a placement (None: no pool)."""
        ends = [self.held_until[n] for n in node_ids if n in self.held_until]
        return min(ends) if ends else None


async def gate(
    db: AsyncSession, node_ids: Sequence[str], org_id: str, project_id: str | None, at: datetime
) -> Gate:
    """Which of ``node_ids`` are closed to the grantee at ``at`` (outside its window, or in
    the drain before the window ends), and until when the open pool nodes are its."""
    result = Gate()
    candidates = set(node_ids)
    for loaded in await repository.load(db, node_ids=node_ids):
        windows = loaded.grants()
        current = schedule.active(windows, loaded.tz, at)
        members = [n for n in loaded.node_ids if n in candidates]
        if (
            current is not None
            and current.grants(org_id, project_id)
            and at < schedule.placeable_until(current, loaded.drain)
        ):
            result.held_until.update(dict.fromkeys(members, current.end))
            continue
        opens = schedule.next_opening(windows, loaded.tz, at, org_id, project_id, loaded.drain)
        result.closed.update(dict.fromkeys(members, ClosedPool(loaded.pool.name, opens)))
    return result


@dataclass(frozen=True, slots=True)
class Drain:
    """A pool in the drain period before its current window ends at ``switch_at``."""

    pool_id: str
    pool_name: str
    node_ids: tuple[str, ...]
    switch_at: datetime
    org_id: str  # the outgoing grantee
    project_id: str | None
    next_org_id: str | None  # who holds the pool from switch_at (None: nobody)
    next_project_id: str | None


async def draining(db: AsyncSession, at: datetime) -> list[Drain]:
    """Every pool whose current window is in its drain period at ``at``."""
    result = []
    for loaded in await repository.load(db):
        windows = loaded.grants()
        current = schedule.active(windows, loaded.tz, at)
        if current is None or not loaded.node_ids:
            continue
        if at < schedule.placeable_until(current, loaded.drain):
            continue
        following = schedule.following(windows, loaded.tz, at)
        result.append(
            Drain(
                pool_id=loaded.pool.id, pool_name=loaded.pool.name,
                node_ids=tuple(loaded.node_ids), switch_at=current.end, org_id=current.org_id,
                project_id=current.project_id,
                next_org_id=following.org_id if following else None,
                next_project_id=following.project_id if following else None,
            )
        )  # fmt: skip
    return result


async def claim_notice(
    db: AsyncSession, pool_id: str, tenancy_id: str, switch_at: datetime, at: datetime
) -> bool:
    """Record that the tenancy was told of the switch; False when it already was (by this
    process earlier, or by another replica)."""
    dialect = db.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(PoolDrainNotice)
        .values(
            id=new_id("pdn"),
            pool_id=pool_id,
            tenancy_id=tenancy_id,
            switch_at=switch_at,
            noticed_at=at,
        )
        .on_conflict_do_nothing(index_elements=["tenancy_id", "switch_at"])
    )
    result = await db.execute(statement)
    return bool(getattr(result, "rowcount", 0) == 1)
