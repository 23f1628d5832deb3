"""GPU-seconds accrue while a tenancy is active, as usage events with idempotent ids.

The tenancy's ``accrued_until`` cursor moves in the same transaction as the events it
covers, and each event's id is the tenancy and the start of the window it covers, so a
restart or a retry can neither skip time nor count it twice. Windows never cross an hour
boundary (hourly aggregation needs no splitting); a still-open hour accrues when it ends
or when the tenancy stops or changes size.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.metering.service import NewUsage, record_usage
from control_plane.tenancies.models import Tenancy

SOURCE = "tenancies"
HOUR = timedelta(hours=1)


def hour_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def accrue(db: AsyncSession, tenancy: Tenancy, *, until: datetime) -> int:
    """Record usage from the cursor up to ``until``; returns the events written."""
    start = tenancy.accrued_until
    if start is None or until <= start:
        return 0
    gpus = Decimal(tenancy.node_count * tenancy.gpus_per_node * tenancy.gpu_milli) / 1000
    dimensions = {
        "region": tenancy.region_code,
        "gpu_model": tenancy.gpu_model_code,
        "tenancy_kind": tenancy.kind,
        "tenancy": tenancy.id,
    }
    managed_by = tenancy.managed_by or ""
    if managed_by.startswith("endpoint:"):  # an endpoint's replica: its GPU-hours held
        dimensions["endpoint"] = managed_by.removeprefix("endpoint:")
    events = []
    while start < until:
        end = min(until, hour_start(start) + HOUR)
        seconds = Decimal((end - start).total_seconds())
        events.append(
            NewUsage(
                source=SOURCE,
                event_id=f"{tenancy.id}/{start.astimezone(UTC).isoformat()}",
                org_id=tenancy.org_id,
                project_id=tenancy.project_id,
                type="gpu_seconds",
                value=(seconds * gpus).quantize(Decimal("0.000001")),
                window_start=start,
                window_end=end,
                dimensions=dimensions,
            )
        )
        start = end
    await record_usage(db, events, until)
    tenancy.accrued_until = until
    return len(events)


async def accrue_closed_hours(db: AsyncSession, tenancy: Tenancy, now: datetime) -> int:
    """Record every hour that has ended since the cursor (the reconciler's periodic pass)."""
    return await accrue(db, tenancy, until=hour_start(now))
