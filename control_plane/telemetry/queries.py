"""Reads over the hourly rollups: one organization's GPUs (tenant) and the fleet (operator)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from functools import lru_cache

from sqlalchemy import Select, bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.identity.authz import TenantScope
from control_plane.insights.features import Thresholds
from control_plane.inventory import service as inventory
from control_plane.telemetry.models import GpuHour
from control_plane.telemetry.schemas import (
    DayTotals,
    FleetPoint,
    FleetReport,
    GpuSeries,
    HourPoint,
    RegionFleet,
    UtilizationReport,
)
from control_plane.tenancies.holders import tenancy_ids_of_project

__all__ = ["fleet_utilization", "org_utilization"]

MAX_GPUS = 200  # series in one report


@lru_cache(maxsize=16)
def _utilization_query(
    tenancy: bool, endpoint: bool, project: bool
) -> Select[str, str, str, int, datetime, float, float, float, int, float, int]:
    """Built once per shape (the waste dashboard's heatmap runs it on every view)."""
    query = select(
        GpuHour.gpu_id, GpuHour.tenancy_id, GpuHour.gpu_model_code, GpuHour.share_milli,
        GpuHour.hour, GpuHour.util_mean, GpuHour.util_p95, GpuHour.util_max,
        GpuHour.mem_max_mib, GpuHour.energy_wh, GpuHour.mem_p95_mib,
    ).where(
        GpuHour.org_id == bindparam("org_id"),
        GpuHour.hour >= bindparam("since"), GpuHour.hour < bindparam("until"),
    )  # fmt: skip
    if tenancy:
        query = query.where(GpuHour.tenancy_id == bindparam("tenancy_id"))
    if endpoint:  # the GPUs of the endpoint's replicas
        query = query.where(GpuHour.endpoint_id == bindparam("endpoint_id"))
    if project:
        query = query.where(GpuHour.tenancy_id.in_(bindparam("project_tenancies", expanding=True)))
    return query.order_by(GpuHour.gpu_id, GpuHour.tenancy_id, GpuHour.hour)


async def org_utilization(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    since: datetime,
    until: datetime,
    tenancy_id: str | None = None,
    endpoint_id: str | None = None,
) -> UtilizationReport:
    scope.require(org_id)
    project_tenancies = (
        await tenancy_ids_of_project(db, org_id, scope.project_id) if scope.project_id else None
    )
    query = _utilization_query(bool(tenancy_id), bool(endpoint_id), project_tenancies is not None)
    values = {"org_id": org_id, "since": since, "until": until, "tenancy_id": tenancy_id,
              "endpoint_id": endpoint_id, "project_tenancies": project_tenancies}  # fmt: skip
    rows = await db.execute(query, values)
    idle_pct = Thresholds().idle_util_pct
    series: dict[tuple[str, str], GpuSeries] = {}
    days: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    weighted = held = idle = energy = 0.0
    for gpu, tenancy, model, share, hour, mean, p95, peak, mem, wh, mem95 in rows:
        part = share / 1000
        day = days[hour.date().isoformat()]
        day[0] += part
        day[2] += wh / 1000
        held += part
        weighted += mean * part
        energy += wh / 1000
        if peak < idle_pct:
            day[1] += part
            idle += part
        key = (gpu, tenancy)
        if key not in series:
            if len(series) >= MAX_GPUS:
                continue
            series[key] = GpuSeries(gpu_id=gpu, gpu_model=model, tenancy_id=tenancy,
                                    share_milli=share, points=[])  # fmt: skip
        series[key].points.append(HourPoint(hour, mean, p95, mem, wh, mem95))
    return UtilizationReport(
        org_id=org_id, since=since, until=until, idle_util_pct=idle_pct,
        gpu_hours=round(held, 2), idle_gpu_hours=round(idle, 2),
        util_mean=round(weighted / held, 2) if held else 0.0, energy_kwh=round(energy, 3),
        days=[DayTotals(d, round(v[0], 2), round(v[1], 2), round(v[2], 3))
              for d, v in sorted(days.items())],
        gpus=list(series.values()), truncated=len(series) >= MAX_GPUS,
    )  # fmt: skip


async def fleet_utilization(db: AsyncSession, since: datetime, until: datetime) -> FleetReport:
    """Per region and hour: GPUs reporting, share-weighted utilization, GPUs allocated to
    tenancies, and mean power (every GPU-hour's energy is split over its rows, so sums are
    exact whatever the sharing)."""
    held = func.sum(case((GpuHour.tenancy_id != "", GpuHour.share_milli), else_=0))
    rows = await db.execute(
        select(GpuHour.region_code, GpuHour.hour, func.count(func.distinct(GpuHour.gpu_id)),
               func.sum(GpuHour.util_mean * GpuHour.share_milli), func.sum(GpuHour.share_milli),
               held, func.sum(GpuHour.energy_wh))
        .where(GpuHour.hour >= since, GpuHour.hour < until)
        .group_by(GpuHour.region_code, GpuHour.hour)
        .order_by(GpuHour.region_code, GpuHour.hour)
    )  # fmt: skip
    points: dict[str, list[FleetPoint]] = defaultdict(list)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for region, hour, gpus, util_x_share, shares, allocated, wh in rows:
        shares = float(shares or 0)
        points[region].append(FleetPoint(
            hour, int(gpus), round(float(util_x_share or 0) / shares, 2) if shares else 0.0,
            round(float(allocated or 0) / 1000, 3), round(float(wh or 0) / 1000, 3),
        ))  # fmt: skip
        t = totals[region]
        t[0] += float(util_x_share or 0)
        t[1] += shares
        t[2] += float(allocated or 0)
        t[3] += float(wh or 0)
    counts = await inventory.region_gpu_counts(db)
    facts = await inventory.region_energy_facts(db)
    regions = []
    for region in sorted(set(counts) | set(points)):
        util_x, shares, allocated, wh = totals[region]
        pue, grid = facts.get(region, (1.0, 0.0))
        kwh = wh / 1000
        regions.append(RegionFleet(
            region=region, gpus=counts.get(region, 0),
            util_mean=round(util_x / shares, 2) if shares else 0.0,
            allocated_share=round(allocated / shares, 3) if shares else 0.0,
            energy_kwh=round(kwh, 3), facility_kwh=round(kwh * pue, 3),
            co2e_kg=round(kwh * pue * grid / 1000, 3), points=points.get(region, []),
        ))  # fmt: skip
    return FleetReport(since=since, until=until, regions=regions)
