"""Usage sums for rating: the hourly rollup summed per organization and every billable
dimension over a period, each hour tagged by the caller's classes (e.g. which price book
version and whether a night rate applies) so one pass over the period rates it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, Integer, String, func, select, text, values
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import column

from control_plane.db.base import UTCDateTime
from control_plane.metering.models import UsageHourly

__all__ = ["HourClass", "UsageSum", "period_sums"]


@dataclass(frozen=True, slots=True)
class HourClass:
    region: str
    hour: datetime
    version: int
    night: bool


@dataclass(frozen=True, slots=True)
class UsageSum:
    org_id: str
    project_id: str
    type: str
    region: str
    gpu_model: str
    tenancy_kind: str
    tenancy: str
    endpoint: str
    model: str
    version: int  # 0 when the hour has no class
    night: bool
    value: Decimal


async def period_sums(
    db: AsyncSession,
    start: datetime,
    end: datetime,
    classes: Sequence[HourClass],
    org_ids: Sequence[str] | None = None,
) -> list[UsageSum]:
    u = UsageHourly
    keys = (
        u.org_id,
        u.project_id,
        u.type,
        u.region,
        u.gpu_model,
        u.tenancy_kind,
        u.tenancy,
        u.endpoint,
        u.model,
    )
    if classes:
        table = (
            values(
                column("region", String),
                column("hour", UTCDateTime()),
                column("version", Integer),
                column("night", Boolean),
                name="hour_class",
            )
            .data([(c.region, c.hour, c.version, c.night) for c in classes])
            .cte("hour_class")
        )
        query = (
            select(*keys, table.c.version, table.c.night, func.sum(u.value))
            .select_from(u)
            .outerjoin(table, (table.c.region == u.region) & (table.c.hour == u.hour))
            .group_by(*keys, table.c.version, table.c.night)
        )
    else:
        query = select(*keys, func.sum(u.value)).group_by(*keys)
    query = query.where(u.hour >= start, u.hour < end)
    if org_ids is not None:
        query = query.where(u.org_id.in_(list(org_ids)))
    postgres = (await db.connection()).dialect.name == "postgresql"
    if postgres:
        # The planner over-estimates the groups (the product of each column's distinct
        # values) and picks a disk sort; one hash table per worker holds the real groups
        # (a few per organization) in memory: 2.7x faster on a month of 10,000 orgs.
        await db.execute(text("SET LOCAL work_mem = '128MB'"))
        await db.execute(text("SET LOCAL enable_sort = off"))
    rows = (await db.execute(query)).all()
    if postgres:
        await db.execute(text("RESET work_mem"))
        await db.execute(text("RESET enable_sort"))
    sums = []
    for row in rows:
        version, night = (row[9] or 0, bool(row[10])) if classes else (0, False)
        org, project, kind, region, gpu, tenancy_kind, tenancy, endpoint, model = row[:9]
        sums.append(
            UsageSum(
                org,
                project,
                kind,
                region,
                gpu,
                tenancy_kind,
                tenancy,
                endpoint,
                model,
                version,
                night,
                Decimal(row[-1]),
            )
        )
    return sums
