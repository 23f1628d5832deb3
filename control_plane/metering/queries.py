"""Usage as customers query it: sums from the hourly rollup, per hour or day, grouped
and filtered by any billable dimension, for one organization the caller may read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.errors import FieldError, InvalidInput
from control_plane.identity.authz import TenantScope
from control_plane.metering.models import UsageHourly, UsageSourceStat
from control_plane.metering.schemas import SourceStatRead, UsageReport, UsageRow

__all__ = ["UNITS", "source_stats", "usage_report"]

UNITS = {"gpu_seconds": "GPU-seconds", "tokens_in": "tokens", "tokens_out": "tokens",
         "cached_tokens": "tokens"}  # fmt: skip
MAX_SPAN = timedelta(days=400)
_COLUMNS = {
    "region": UsageHourly.region, "gpu_model": UsageHourly.gpu_model,
    "tenancy_kind": UsageHourly.tenancy_kind, "tenancy": UsageHourly.tenancy,
    "endpoint": UsageHourly.endpoint, "model": UsageHourly.model,
    "project": UsageHourly.project_id,
}  # fmt: skip


async def usage_report(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    *,
    since: datetime,
    until: datetime,
    granularity: str = "day",
    group_by: Sequence[str] = (),
    types: Sequence[str] = (),
    filters: Mapping[str, str] | None = None,
) -> UsageReport:
    scope.require(org_id)
    if until <= since or until - since > MAX_SPAN:
        raise InvalidInput(
            detail="until must be after since, at most 400 days later.",
            errors=[FieldError("query.until", "out of range")],
        )
    groups = [_COLUMNS[g] for g in group_by]
    query = (
        select(UsageHourly.hour, UsageHourly.type, *groups, func.sum(UsageHourly.value))
        .where(UsageHourly.org_id == org_id, UsageHourly.hour >= _floor(since, "hour"),
               UsageHourly.hour < until)
        .group_by(UsageHourly.hour, UsageHourly.type, *groups)
    )  # fmt: skip
    if scope.project_id is not None:  # an API key sees its own project only
        query = query.where(UsageHourly.project_id == scope.project_id)
    if types:
        query = query.where(UsageHourly.type.in_(list(types)))
    for name, value in (filters or {}).items():
        query = query.where(_COLUMNS[name] == value)
    sums: dict[tuple[datetime, str, tuple[str, ...]], Decimal] = {}
    for hour, kind, *rest in await db.execute(query):
        *values, total = rest
        key = (_floor(hour, granularity), kind, tuple(values))
        sums[key] = sums.get(key, Decimal(0)) + Decimal(total)
    rows = [
        UsageRow(period=period, type=kind, group=dict(zip(group_by, values, strict=True)),
                 value=value, unit=UNITS.get(kind, kind))
        for (period, kind, values), value in sorted(sums.items())
    ]  # fmt: skip
    return UsageReport(
        granularity="hour" if granularity == "hour" else "day", since=since, until=until,
        group_by=list(group_by), rows=rows,
    )  # fmt: skip


def _floor(at: datetime, granularity: str) -> datetime:
    at = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if granularity == "day" else at


async def source_stats(db: AsyncSession) -> list[SourceStatRead]:
    rows = await db.scalars(select(UsageSourceStat).order_by(UsageSourceStat.source))
    return [
        SourceStatRead(source=r.source, accepted=r.accepted, duplicates=r.duplicates,
                       amendments=r.amendments, rejected=r.rejected, last_seen_at=r.last_seen_at)
        for r in rows
    ]  # fmt: skip
