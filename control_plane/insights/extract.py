"""Features from the hourly GPU rollups: one aggregate query over the window (conditional
sums, portable to SQLite and PostgreSQL) gives each (tenancy, GPU) its idle, busy, night and
day hours, peaks and energy; the rules then run on thousands of rows, not millions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db.base import UTCDateTime
from control_plane.insights.features import GpuFeatures, Thresholds
from control_plane.telemetry.models import GpuHour

__all__ = ["GpuRollup", "gpu_features"]


@dataclass(frozen=True, slots=True)
class GpuRollup:
    tenancy_id: str
    org_id: str
    features: GpuFeatures


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


async def gpu_features(
    db: AsyncSession,
    since: datetime,
    until: datetime,
    th: Thresholds,
    org_ids: Sequence[str] | None = None,
) -> list[GpuRollup]:
    """Per (tenancy, GPU) held during ``[since, until)``."""
    h = GpuHour
    idle = h.util_max < th.idle_util_pct
    busy = h.util_p95 >= th.busy_util_pct
    if th.night_start > th.night_end:
        night = or_(h.local_hour >= th.night_start, h.local_hour < th.night_end)
    else:
        night = and_(h.local_hour >= th.night_start, h.local_hour < th.night_end)
    query = (
        select(
            h.tenancy_id, h.gpu_id, func.max(h.org_id), func.count(), _count(idle), _count(busy),
            func.avg(h.util_mean), func.max(h.util_p95),
            func.sum(case((busy, h.util_p95), else_=0.0)),
            func.max(h.mem_max_mib), func.max(h.mem_total_mib), func.max(h.proc_max),
            func.avg(h.power_mean_w), func.sum(h.energy_wh),
            type_coerce(func.max(case((busy, h.hour), else_=None)), UTCDateTime()),
            _count(night), _count(and_(night, idle)), _count(~night),
            _count(and_(~night, busy)),
        )
        .where(h.hour >= since, h.hour < until, h.tenancy_id != "")
        .group_by(h.tenancy_id, h.gpu_id)
    )  # fmt: skip
    if org_ids is not None:
        query = query.where(h.org_id.in_(list(org_ids)))
    result = []
    for row in await db.execute(query):
        (tenancy, gpu, org, hours, idle_h, busy_h, util_mean, p95_max, busy_p95_sum, mem_max,
         mem_total, proc_max, power, energy, last_busy, night_h, night_idle, day_h,
         day_busy) = row  # fmt: skip
        busy_h = int(busy_h or 0)
        result.append(GpuRollup(tenancy, org or "", GpuFeatures(
            gpu_id=gpu, hours=int(hours), idle_hours=int(idle_h or 0), busy_hours=busy_h,
            util_mean=round(float(util_mean or 0), 2), util_p95_max=float(p95_max or 0),
            busy_util_p95_mean=round(float(busy_p95_sum or 0) / busy_h, 2) if busy_h else 0.0,
            mem_max_mib=int(mem_max or 0), mem_total_mib=int(mem_total or 0),
            proc_max=int(proc_max or 0), power_mean_w=round(float(power or 0), 2),
            energy_wh=round(float(energy or 0), 3), last_busy_at=last_busy,
            night_hours=int(night_h or 0), night_idle_hours=int(night_idle or 0),
            day_hours=int(day_h or 0), day_busy_hours=int(day_busy or 0),
        )))  # fmt: skip
    return result
