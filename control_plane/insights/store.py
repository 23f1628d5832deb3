"""Keeps analysis results: one recommendation per (organization, rule, target), refreshed
by each analysis, with the customer's decisions (applied, dismissed, snoozed) respected;
and each organization's idle GPU-hours per day, priced (the waste trend)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.ids import new_id
from control_plane.insights.analysis import GpuPricer, PriceKey
from control_plane.insights.features import Thresholds
from control_plane.insights.findings import Finding
from control_plane.insights.models import Recommendation, WasteDay
from control_plane.telemetry.models import GpuHour

__all__ = ["OPEN", "DayWaste", "save_findings", "save_waste_days", "waste_days"]

OPEN, APPLIED, DISMISSED, SNOOZED, RESOLVED = "open", "applied", "dismissed", "snoozed", "resolved"
_REOPEN_APPLIED_AFTER = timedelta(days=1)  # applied, yet still wasteful a day later: reopen
_CENTS = Decimal("0.01")


def _values(f: Finding) -> dict[str, Any]:
    return {
        "target_kind": f.target_kind, "target_name": f.target_name[:100], "region": f.region,
        "title": f.title[:300],
        "action": {"kind": f.action.kind.value, "params": f.action.params,
                   "summary": f.action.summary},
        "monthly_savings": f.monthly_savings, "currency": f.currency,
        "energy_kwh_month": f.energy_kwh_month, "co2e_kg_month": f.co2e_kg_month,
        "confidence": f.confidence, "evidence": f.evidence,
        "wasted_gpu_hours": f.wasted_gpu_hours,
    }  # fmt: skip


async def save_findings(
    db: AsyncSession, findings: Sequence[Finding], org_ids: Iterable[str] | None, now: datetime
) -> dict[str, int]:
    """Upsert the findings; open ones not found again are resolved. ``org_ids`` are the
    organizations analysed (None: all)."""
    query = select(Recommendation)
    if org_ids is not None:
        query = query.where(Recommendation.org_id.in_(sorted(org_ids)))
    existing = {(r.org_id, r.rule, r.target_id): r for r in (await db.execute(query)).scalars()}
    counts = {"new": 0, "updated": 0, "reopened": 0, "resolved": 0}
    seen = set()
    for f in findings:
        key = (f.org_id, f.rule.value, f.target_id)
        seen.add(key)
        row = existing.get(key)
        if row is None:
            db.add(Recommendation(
                id=new_id("rec"), org_id=f.org_id, rule=f.rule.value, target_id=f.target_id,
                state=OPEN, snoozed_until=None, note="", first_seen_at=now, last_seen_at=now,
                decided_at=None, decided_by=None, **_values(f),
            ))  # fmt: skip
            counts["new"] += 1
            continue
        for name, value in _values(f).items():
            setattr(row, name, value)
        row.last_seen_at = now
        if _reopens(row, now):
            row.state, row.snoozed_until = OPEN, None
            counts["reopened"] += 1
        else:
            counts["updated"] += 1
    for key, row in existing.items():
        if key not in seen and row.state in (OPEN, SNOOZED):
            row.state, row.snoozed_until = RESOLVED, None
            row.note = "no longer found by the analysis"
            counts["resolved"] += 1
    await db.flush()
    return counts


def _reopens(row: Recommendation, now: datetime) -> bool:
    if row.state == RESOLVED:
        return True
    if row.state == SNOOZED:
        return row.snoozed_until is None or row.snoozed_until <= now
    if row.state == APPLIED:
        return row.decided_at is not None and now - row.decided_at > _REOPEN_APPLIED_AFTER
    return False  # open stays open; dismissed stays dismissed


@dataclass(frozen=True, slots=True)
class DayWaste:
    org_id: str
    day: date
    currency: str
    gpu_hours: float
    idle_gpu_hours: float
    wasted: Decimal


async def waste_days(
    db: AsyncSession,
    pricer: GpuPricer,
    kinds: dict[str, str],
    since: datetime,
    until: datetime,
    th: Thresholds,
    org_ids: Sequence[str] | None = None,
    tenancy_ids: Sequence[str] | None = None,
) -> list[DayWaste]:
    """Idle GPU-hours per organization and day, priced at the organization's GPU-hour price
    of each model (``kinds`` maps tenancy ids to their kind, for kind-specific rates)."""
    h = GpuHour
    query = (
        select(h.org_id, h.hour, h.tenancy_id, h.region_code, h.gpu_model_code, h.share_milli,
               h.util_max)
        .where(h.hour >= since, h.hour < until, h.tenancy_id != "")
    )  # fmt: skip
    if org_ids is not None:
        query = query.where(h.org_id.in_(list(org_ids)))
    if tenancy_ids is not None:
        query = query.where(h.tenancy_id.in_(list(tenancy_ids)))
    held: dict[tuple[str, Any, str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for org, hour, tenancy, region, model, share, peak in await db.execute(query):
        cell = held[(org or "", hour.date(), region, model, kinds.get(tenancy, ""))]
        cell[0] += share / 1000
        if peak < th.idle_util_pct:
            cell[1] += share / 1000
    models: dict[str, set[str]] = defaultdict(set)
    for _, _, region, model, _ in held:
        models[region].add(model)
    wanted: set[PriceKey] = {(org, region, kind) for org, _, region, _, kind in held}
    prices = await pricer(db, wanted, models)
    days: dict[tuple[str, Any, str], list[Any]] = defaultdict(lambda: [0.0, 0.0, Decimal(0)])
    for (org, day, region, model, kind), (hours, idle) in held.items():
        currency, by_model = prices.get((org, region, kind), ("", {}))
        if not currency:
            continue
        tally = days[(org, day, currency)]
        tally[0] += hours
        tally[1] += idle
        tally[2] += by_model.get(model, Decimal(0)) * Decimal(str(round(idle, 6)))
    return [
        DayWaste(org, day, currency, round(hours, 3), round(idle, 3),
                 money.quantize(_CENTS, ROUND_HALF_EVEN))
        for (org, day, currency), (hours, idle, money) in sorted(days.items())
    ]  # fmt: skip


async def save_waste_days(
    db: AsyncSession,
    pricer: GpuPricer,
    kinds: dict[str, str],
    since: datetime,
    until: datetime,
    th: Thresholds,
    now: datetime,
    org_ids: Sequence[str] | None = None,
) -> int:
    """Keep :func:`waste_days` for the organizations (the trend the portal draws)."""
    days = await waste_days(db, pricer, kinds, since, until, th, org_ids)
    stale = delete(WasteDay).where(WasteDay.day >= since.date(), WasteDay.day <= until.date())
    if org_ids is not None:
        stale = stale.where(WasteDay.org_id.in_(list(org_ids)))
    await db.execute(stale)
    db.add_all(
        WasteDay(org_id=d.org_id, day=d.day, currency=d.currency, gpu_hours=d.gpu_hours,
                 idle_gpu_hours=d.idle_gpu_hours, wasted=d.wasted, updated_at=now)
        for d in days
    )  # fmt: skip
    await db.flush()
    return len(days)
