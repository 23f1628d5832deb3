"""Hourly rollups: each GPU-hour that received samples is recomputed whole from its raw
samples (so late and retried batches simply make it dirty again) and split among the
tenancies that held the GPU during that hour, by share and by time held."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.inventory import service as inventory
from control_plane.telemetry.models import GpuHour, GpuSample, TelemetryDirtyHour
from control_plane.tenancies.holders import Holder, holders_during

__all__ = ["HourStats", "hour_stats", "roll_up_dirty"]

HOUR = timedelta(hours=1)
_DEFAULT_GAP = 60.0  # seconds one lone sample stands for


@dataclass(frozen=True, slots=True)
class HourStats:
    samples: int
    util_mean: float
    util_p95: float
    util_max: float
    mem_mean_mib: int
    mem_p95_mib: int
    mem_max_mib: int
    mem_total_mib: int
    power_mean_w: float
    energy_wh: float
    proc_max: int
    ecc_errors: int


def _p95(values: list[int]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)])


def hour_stats(rows: Sequence[tuple[datetime, int, int, int, float, int, int | None]]) -> HourStats:
    """Rows: (at, sm_util, mem_used_mib, mem_total_mib, power_w, proc_count, ecc_uncorrected)."""
    rows = sorted(rows, key=lambda r: r[0])
    n = len(rows)
    util = [r[1] for r in rows]
    mem = [r[2] for r in rows]
    power = sum(r[4] for r in rows) / n
    gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(rows)]
    gap = median(gaps) if gaps else _DEFAULT_GAP
    covered = min(1.0, n * gap / 3600)
    ecc = [r[6] for r in rows if r[6] is not None]
    return HourStats(
        samples=n, util_mean=round(sum(util) / n, 2), util_p95=_p95(util),
        util_max=float(max(util)), mem_mean_mib=round(sum(mem) / n),
        mem_p95_mib=int(_p95(mem)), mem_max_mib=max(mem),
        mem_total_mib=max(r[3] for r in rows), power_mean_w=round(power, 2),
        energy_wh=round(power * covered, 3), proc_max=max(r[5] for r in rows),
        ecc_errors=(max(ecc) - min(ecc)) if ecc else 0,
    )  # fmt: skip


async def roll_up_dirty(db: AsyncSession, limit: int = 2000) -> int:
    """Recompute up to ``limit`` dirty GPU-hours; returns how many. Replicas share the work:
    on PostgreSQL each claims its rows with ``SKIP LOCKED``."""
    query = (
        select(TelemetryDirtyHour.gpu_id, TelemetryDirtyHour.hour)
        .order_by(TelemetryDirtyHour.hour, TelemetryDirtyHour.gpu_id)
        .limit(limit)
    )
    if (await db.connection()).dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    dirty = list(await db.execute(query))
    if not dirty:
        return 0
    pairs = {(g, h) for g, h in dirty}
    gpu_ids = sorted({g for g, _ in dirty})
    start, end = min(h for _, h in dirty), max(h for _, h in dirty) + HOUR
    samples = await _samples(db, gpu_ids, start, end, pairs)
    locations = await inventory.gpu_locations(db, gpu_ids)
    holders = await holders_during(db, gpu_ids, start, end)
    rows = _hour_rows(samples, locations, holders)
    await db.execute(delete(GpuHour).where(tuple_(GpuHour.gpu_id, GpuHour.hour).in_(sorted(pairs))))
    if rows:
        await db.execute(insert(GpuHour), rows)
    await db.execute(
        delete(TelemetryDirtyHour).where(
            tuple_(TelemetryDirtyHour.gpu_id, TelemetryDirtyHour.hour).in_(sorted(pairs))
        )
    )
    return len(pairs)


Sample = tuple[datetime, int, int, int, float, int, int | None]


async def _samples(
    db: AsyncSession,
    gpu_ids: list[str],
    start: datetime,
    end: datetime,
    pairs: set[tuple[str, datetime]],
) -> dict[tuple[str, datetime], list[Sample]]:
    result: dict[tuple[str, datetime], list[Sample]] = defaultdict(list)
    rows = await db.execute(
        select(GpuSample.gpu_id, GpuSample.at, GpuSample.sm_util, GpuSample.mem_used_mib,
               GpuSample.mem_total_mib, GpuSample.power_w, GpuSample.proc_count,
               GpuSample.ecc_uncorrected)
        .where(GpuSample.gpu_id.in_(gpu_ids), GpuSample.at >= start, GpuSample.at < end)
    )  # fmt: skip
    for gpu_id, at, util, mem, total, power, procs, ecc in rows:
        key = (gpu_id, at.replace(minute=0, second=0, microsecond=0))
        if key in pairs:
            result[key].append((at, util, mem, total, power, procs, ecc))
    return result


def _hour_rows(
    samples: dict[tuple[str, datetime], list[Sample]],
    locations: dict[str, inventory.GpuLocation],
    holders: list[Holder],
) -> list[dict[str, Any]]:
    by_gpu: dict[str, list[Holder]] = defaultdict(list)
    for holder in holders:
        by_gpu[holder.gpu_id].append(holder)
    rows: list[dict[str, Any]] = []
    for (gpu_id, hour), readings in samples.items():
        where = locations.get(gpu_id)
        if where is None:
            continue  # the GPU left the inventory; its samples age out
        stats = hour_stats(readings)
        local_hour = hour.astimezone(ZoneInfo(where.timezone)).hour
        base = {
            "gpu_id": gpu_id, "hour": hour, "node_id": where.node_id,
            "region_code": where.region, "gpu_model_code": where.gpu_model,
            "local_hour": local_hour, **_stats_columns(stats),
        }  # fmt: skip
        rows.extend(_split(base, stats, hour, by_gpu.get(gpu_id, [])))
    return rows


def _stats_columns(s: HourStats) -> dict[str, Any]:
    return {
        "samples": s.samples, "util_mean": s.util_mean, "util_p95": s.util_p95,
        "util_max": s.util_max, "mem_mean_mib": s.mem_mean_mib, "mem_p95_mib": s.mem_p95_mib,
        "mem_max_mib": s.mem_max_mib,
        "mem_total_mib": s.mem_total_mib, "power_mean_w": s.power_mean_w,
        "proc_max": s.proc_max, "ecc_errors": s.ecc_errors,
    }  # fmt: skip


def _split(
    base: dict[str, Any], stats: HourStats, hour: datetime, holders: list[Holder]
) -> list[dict[str, Any]]:
    """One row per tenancy that held the GPU in the hour (its share of the energy, by milli
    and by the part of the hour held), and one for the rest (``tenancy_id`` "")."""
    end = hour + HOUR
    held: dict[str, tuple[Holder, int, float]] = {}
    for h in holders:
        overlap = (min(h.end, end) - max(h.start, hour)).total_seconds()
        if overlap <= 0:
            continue
        fraction = h.milli / 1000 * overlap / 3600
        if h.tenancy_id in held:  # re-allocated within the hour (a resize): add up
            prev, milli, frac = held[h.tenancy_id]
            held[h.tenancy_id] = (prev, max(milli, h.milli), frac + fraction)
        else:
            held[h.tenancy_id] = (h, h.milli, fraction)
    rows: list[dict[str, Any]] = []
    used = 0.0
    for tenancy_id, (h, milli, fraction) in sorted(held.items()):
        fraction = min(fraction, 1.0 - used)
        used += fraction
        rows.append({**base, "tenancy_id": tenancy_id, "org_id": h.org_id,
                     "endpoint_id": h.endpoint_id, "share_milli": milli,
                     "energy_wh": round(stats.energy_wh * fraction, 3)})  # fmt: skip
    if used < 0.999:
        rows.append({**base, "tenancy_id": "", "org_id": None, "endpoint_id": None,
                     "share_milli": max(0, 1000 - sum(m for _, m, _ in held.values())),
                     "energy_wh": round(stats.energy_wh * (1.0 - used), 3)})  # fmt: skip
    return rows
