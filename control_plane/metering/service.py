"""Recording usage: exactly once per (source, event_id), whatever the producer retries."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import cast

from sqlalchemy import Select, Table, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db.bulk import upsert
from control_plane.ids import new_ids
from control_plane.metering.models import UsageEvent, UsageHourly, UsageSourceStat
from control_plane.metering.rollup import DIMENSIONS, add_to_rollup, rollup_key

__all__ = [
    "HourlyUsage", "NewUsage", "count_sources", "record_usage", "usage_by_hour", "usage_total",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class NewUsage:
    source: str
    event_id: str
    org_id: str
    project_id: str | None
    type: str  # gpu_seconds, tokens_in, tokens_out, cached_tokens
    value: Decimal
    window_start: datetime
    window_end: datetime
    dimensions: Mapping[str, str] = field(default_factory=dict)
    amends_id: str | None = None  # the stored event this one corrects (value = difference)


async def record_usage(db: AsyncSession, events: Sequence[NewUsage], at: datetime) -> int:
    """Store the events in the caller's transaction, add the new ones to the hourly rollup
    and to their source's counts; returns how many were duplicates (already stored under
    the same source and id) and so ignored."""
    if not events:
        return 0
    rows = {}
    for e, row_id in zip(events, new_ids("use", len(events)), strict=True):
        rows[row_id] = (e, {
            "id": row_id, "source": e.source, "event_id": e.event_id,
            "org_id": e.org_id, "project_id": e.project_id, "type": e.type, "value": e.value,
            "dimensions": dict(e.dimensions), "window_start": e.window_start,
            "window_end": e.window_end, "recorded_at": at, "amends_id": e.amends_id,
        })  # fmt: skip
    stored = await upsert(
        db, cast(Table, UsageEvent.__table__), [row for _, row in rows.values()],
        conflict=("source", "event_id"), returning="id",  # tells exactly what was stored
    )  # fmt: skip
    new = [rows[row_id][0] for row_id in stored]
    await add_to_rollup(
        db,
        ((rollup_key(e.org_id, e.project_id, e.type, e.window_start, e.dimensions), e.value)
         for e in new),
    )  # fmt: skip
    await count_sources(db, events, new, at)
    return len(rows) - len(new)


async def count_sources(
    db: AsyncSession,
    sent: Sequence[NewUsage],
    stored: Sequence[NewUsage],
    at: datetime,
    rejected: Mapping[str, int] | None = None,
) -> None:
    """Add a batch to its sources' counts: stored, duplicates, amendments, rejected."""
    counts: dict[str, list[int]] = {}
    for e in sent:
        counts.setdefault(e.source, [0, 0, 0, 0])[1] += 1
    for e in stored:
        entry = counts[e.source]
        entry[0] += 1
        entry[1] -= 1
        entry[2] += e.amends_id is not None
    for source, n in (rejected or {}).items():
        counts.setdefault(source, [0, 0, 0, 0])[3] += n
    if not counts:
        return
    dialect = (await db.connection()).dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = cast(Table, UsageSourceStat.__table__)
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["source"],
        set_={
            name: table.c[name] + statement.excluded[name]
            for name in ("accepted", "duplicates", "amendments", "rejected")
        }
        | {"last_seen_at": statement.excluded.last_seen_at},
    )
    await db.execute(
        statement,
        [
            {"source": source, "accepted": a, "duplicates": d, "amendments": m,
             "rejected": r, "last_seen_at": at}
            for source, (a, d, m, r) in sorted(counts.items())
        ],
    )  # fmt: skip


async def usage_total(
    db: AsyncSession, *, org_id: str, type: str, dimension: tuple[str, str] | None = None
) -> Decimal:
    """Sum of an organization's usage of one type (optionally where a dimension matches)."""
    query = select(UsageEvent.value, UsageEvent.dimensions).where(
        UsageEvent.org_id == org_id, UsageEvent.type == type
    )
    total = Decimal(0)
    for value, dimensions in await db.execute(query):
        if dimension is None or dimensions.get(dimension[0]) == dimension[1]:
            total += value
    return total


@dataclass(frozen=True, slots=True)
class HourlyUsage:
    """Usage per hour: ``hours`` are the hour starts (UTC), ``values[type][i]`` the amount
    whose window started in hour ``i``."""

    hours: list[datetime]
    values: dict[str, list[Decimal]]


@lru_cache(maxsize=16)
def _usage_by_hour_query(dimension: str | None) -> Select[str, datetime, Decimal]:
    """Built once per dimension (a portal page's chart runs it)."""
    query = (
        select(UsageHourly.type, UsageHourly.hour, func.sum(UsageHourly.value))
        .where(
            UsageHourly.org_id == bindparam("org_id"),
            UsageHourly.type.in_(bindparam("types", expanding=True)),
            UsageHourly.hour >= bindparam("start"),
            UsageHourly.hour < bindparam("until"),
        )
        .group_by(UsageHourly.type, UsageHourly.hour)
    )
    if dimension is not None:
        query = query.where(UsageHourly.__table__.c[dimension] == bindparam("dimension"))
    return query


async def usage_by_hour(
    db: AsyncSession,
    org_id: str,
    types: Sequence[str],
    since: datetime,
    until: datetime,
    dimension: tuple[str, str] | None = None,
) -> HourlyUsage:
    """An organization's usage of ``types`` per hour from ``since`` (floored to the hour)
    to ``until``, from the hourly rollup, optionally where one of its dimensions matches
    (e.g. ``("endpoint", id)``)."""
    start = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    count = max(1, math.ceil((until - start).total_seconds() / 3600))
    hours = [start + timedelta(hours=n) for n in range(count)]
    values = {t: [Decimal(0)] * count for t in types}
    if dimension is not None and dimension[0] not in DIMENSIONS:
        raise ValueError(f"the hourly rollup has no dimension {dimension[0]!r}")
    query = _usage_by_hour_query(dimension[0] if dimension else None)
    bound = {"org_id": org_id, "types": list(types), "start": start, "until": until,
             "dimension": dimension[1] if dimension else None}  # fmt: skip
    for kind, at, value in await db.execute(query, bound):
        index = int((at.astimezone(UTC) - start).total_seconds() // 3600)
        if 0 <= index < count:
            values[kind][index] += Decimal(value)
    return HourlyUsage(hours=hours, values=values)


async def endpoint_tokens_by_hour(
    db: AsyncSession, org_ids: Sequence[str] | None, since: datetime, until: datetime,
    usage_type: str = "tokens_out",
) -> dict[str, dict[datetime, int]]:  # fmt: skip
    """Tokens of ``usage_type`` per inference endpoint and hour (waste analysis)."""
    query = (
        select(UsageHourly.endpoint, UsageHourly.hour, func.sum(UsageHourly.value))
        .where(UsageHourly.type == usage_type, UsageHourly.endpoint != "",
               UsageHourly.hour >= since, UsageHourly.hour < until)
        .group_by(UsageHourly.endpoint, UsageHourly.hour)
    )  # fmt: skip
    if org_ids is not None:
        query = query.where(UsageHourly.org_id.in_(list(org_ids)))
    result: dict[str, dict[datetime, int]] = {}
    for endpoint, hour, value in await db.execute(query):
        result.setdefault(endpoint, {})[hour] = int(value or 0)
    return result
