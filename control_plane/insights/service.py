"""Recommendations as customers use them: listed with savings, applied through the normal
resize, release, schedule or scale path (audited like any change), dismissed or snoozed;
the waste report; and the analysis run itself (background loop or on demand)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.db.filters import one_of
from control_plane.endpoints import service as endpoints
from control_plane.endpoints.schemas import ScaleSet
from control_plane.errors import Conflict, NotFound
from control_plane.identity.authz import TenantScope
from control_plane.identity.roles import Permission
from control_plane.insights.analysis import GpuPricer, analyze, window_of
from control_plane.insights.features import Thresholds
from control_plane.insights.findings import ActionKind
from control_plane.insights.models import Recommendation, WasteDay
from control_plane.insights.schemas import (
    ActionRead,
    AnalysisResult,
    CurrencyWaste,
    RecommendationRead,
    WasteDayRead,
    WasteReport,
)
from control_plane.insights.store import (
    APPLIED,
    DISMISSED,
    OPEN,
    SNOOZED,
    DayWaste,
    save_findings,
    save_waste_days,
    waste_days,
)
from control_plane.settings import Settings
from control_plane.tenancies import service as tenancies
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.holders import live_tenancies, tenancy_ids_of_project
from control_plane.tenancies.schemas import TenancyResize, TenancySchedule

__all__ = ["ApplyDeps", "apply", "dismiss", "get", "list_recommendations", "run_analysis",
           "snooze", "waste_report"]  # fmt: skip

STATES = frozenset({"open", "applied", "dismissed", "snoozed", "resolved"})


@dataclass(frozen=True, slots=True)
class ApplyDeps:
    clock: Clock
    settings: Settings
    drivers: Drivers


def read(r: Recommendation) -> RecommendationRead:
    action = r.action or {}
    return RecommendationRead(
        id=r.id, org_id=r.org_id, rule=r.rule, target_kind=r.target_kind, target_id=r.target_id,
        target_name=r.target_name, region=r.region, title=r.title,
        action=ActionRead(str(action.get("kind", "")), dict(action.get("params") or {}),
                          str(action.get("summary", ""))),
        monthly_savings=r.monthly_savings, currency=r.currency,
        energy_kwh_month=r.energy_kwh_month, co2e_kg_month=r.co2e_kg_month,
        confidence=r.confidence, evidence=r.evidence, wasted_gpu_hours=r.wasted_gpu_hours,
        state=r.state, snoozed_until=r.snoozed_until, note=r.note,
        first_seen_at=r.first_seen_at, last_seen_at=r.last_seen_at, decided_at=r.decided_at,
        decided_by=r.decided_by,
    )  # fmt: skip


async def run_analysis(
    db: AsyncSession,
    pricer: GpuPricer,
    clock: Clock,
    settings: Settings,
    org_ids: Sequence[str] | None = None,
    th: Thresholds | None = None,
) -> AnalysisResult:
    """Analyse the trailing window and keep the findings and the waste days."""
    th = th or Thresholds()
    now = clock.now()
    since, until = window_of(now, settings.insights_window_days)
    result = await analyze(db, pricer, since, until, th, org_ids)
    counts = await save_findings(db, result.findings, org_ids, now)
    kinds = {t.id: t.kind for t in await live_tenancies(db, org_ids)}
    day_start = since.replace(hour=0)
    await save_waste_days(db, pricer, kinds, day_start, until, th, now, org_ids)
    return AnalysisResult(since=since, until=until, tenancies=result.tenancies,
                          endpoints=result.endpoints, unpriced=result.unpriced,
                          findings=len(result.findings), **counts)  # fmt: skip


async def _project_filter(
    db: AsyncSession, scope: TenantScope, org_id: str
) -> ColumnElement[bool] | None:
    """API keys of a project see advice on that project's tenancies only."""
    if not scope.project_id:
        return None
    ids = await tenancy_ids_of_project(db, org_id, scope.project_id)
    return Recommendation.target_id.in_(ids) & (Recommendation.target_kind == "tenancy")


# An organization's advice (not a project key's), built once: the waste dashboard lists it
# on every view, and building a statement costs as much CPU as running it.
_RECOMMENDATIONS = (
    select(Recommendation)
    .where(
        Recommendation.org_id == bindparam("org_id"),
        Recommendation.state.in_(bindparam("states", expanding=True)),
    )
    .order_by(Recommendation.monthly_savings.desc(), Recommendation.id)
    .limit(500)
)


async def list_recommendations(
    db: AsyncSession, scope: TenantScope, org_id: str, states: Sequence[str] = (OPEN,)
) -> list[RecommendationRead]:
    """Biggest savings first."""
    scope.require(org_id)
    if (project := await _project_filter(db, scope, org_id)) is not None:
        query = select(Recommendation).where(
            scope.org_filter(Recommendation.org_id), Recommendation.org_id == org_id,
            one_of(Recommendation.state, states), project,
        ).order_by(Recommendation.monthly_savings.desc(), Recommendation.id).limit(500)  # fmt: skip
        return [read(r) for r in (await db.execute(query)).scalars()]
    values = {"org_id": org_id, "states": sorted(states)}
    return [read(r) for r in (await db.execute(_RECOMMENDATIONS, values)).scalars()]


async def _one(
    db: AsyncSession, scope: TenantScope, org_id: str, rec_id: str, *, for_update: bool = False
) -> Recommendation:
    scope.require(org_id)
    query = select(Recommendation).where(
        scope.org_filter(Recommendation.org_id), Recommendation.org_id == org_id,
        Recommendation.id == rec_id,
    )  # fmt: skip
    if (project := await _project_filter(db, scope, org_id)) is not None:
        query = query.where(project)
    if for_update:
        query = query.with_for_update()
    row = (await db.execute(query)).scalar_one_or_none()
    if row is None:
        raise NotFound(detail="No such recommendation.")
    return row


async def get(db: AsyncSession, scope: TenantScope, org_id: str, rec_id: str) -> RecommendationRead:
    return read(await _one(db, scope, org_id, rec_id))


def _decide(row: Recommendation, scope: TenantScope, state: str, note: str, now: datetime) -> None:
    row.state, row.note, row.decided_at = state, note[:500], now
    row.decided_by = scope.principal.ref


async def dismiss(
    db: AsyncSession, scope: TenantScope, org_id: str, rec_id: str, reason: str, now: datetime
) -> RecommendationRead:
    scope.require(org_id, Permission.INSIGHTS_WRITE)
    row = await _one(db, scope, org_id, rec_id, for_update=True)
    if row.state == APPLIED:
        raise Conflict(detail="This recommendation was applied; there is nothing to dismiss.")
    _decide(row, scope, DISMISSED, reason or "dismissed", now)
    row.snoozed_until = None
    return read(row)


async def snooze(
    db: AsyncSession, scope: TenantScope, org_id: str, rec_id: str, days: int, now: datetime
) -> RecommendationRead:
    scope.require(org_id, Permission.INSIGHTS_WRITE)
    row = await _one(db, scope, org_id, rec_id, for_update=True)
    if row.state not in (OPEN, SNOOZED):
        raise Conflict(detail=f"Only open advice can be snoozed; this one is {row.state}.")
    _decide(row, scope, SNOOZED, f"snoozed for {days} day(s)", now)
    row.snoozed_until = now + timedelta(days=days)
    return read(row)


async def apply(
    db: AsyncSession, scope: TenantScope, org_id: str, rec_id: str, deps: ApplyDeps
) -> RecommendationRead:
    """Carry the action out through the path a customer would use by hand (with its checks:
    permissions, quotas, capacity, residency), then mark the advice applied."""
    scope.require(org_id, Permission.INSIGHTS_WRITE)
    row = await _one(db, scope, org_id, rec_id, for_update=True)
    if row.state not in (OPEN, SNOOZED):
        raise Conflict(detail=f"Only open advice can be applied; this one is {row.state}.")
    kind = ActionKind(str(row.action.get("kind")))
    params: dict[str, Any] = dict(row.action.get("params") or {})
    now = deps.clock.now()
    if kind is ActionKind.SCALE:
        await endpoints.scale(
            db, scope, org_id, row.target_id,
            ScaleSet(min_replicas=int(params["min_replicas"]),
                     max_replicas=int(params["max_replicas"])),
            endpoints.Deps(clock=deps.clock, settings=deps.settings, drivers=deps.drivers),
        )  # fmt: skip
    elif kind is ActionKind.RELEASE:
        await tenancies.release(db, scope, org_id, row.target_id, clock=deps.clock,
                                settings=deps.settings)  # fmt: skip
    elif kind is ActionKind.RESIZE:
        await tenancies.resize(db, scope, org_id, row.target_id, TenancyResize(
            gpus_per_node=int(params["gpus_per_node"]),
            node_count=int(params["node_count"]) if params.get("node_count") else None,
            gpu_model=params.get("gpu_model"),
            gpu_milli=int(params["gpu_milli"]) if params.get("gpu_milli") else None,
        ), clock=deps.clock, settings=deps.settings, drivers=deps.drivers)  # fmt: skip
    else:
        schedule = TenancySchedule(idle_release_minutes=int(params["idle_release_minutes"]))
        await tenancies.set_schedule(db, scope, org_id, row.target_id, schedule, clock=deps.clock)
    summary = str(row.action.get("summary") or kind.value)
    _decide(row, scope, APPLIED, f"applied: {summary}", now)
    row.snoozed_until = None
    return read(row)


_WASTE_DAYS = (  # built once, as _RECOMMENDATIONS
    select(WasteDay)
    .where(
        WasteDay.org_id == bindparam("org_id"),
        WasteDay.day >= bindparam("since"),
        WasteDay.day < bindparam("until"),
    )
    .order_by(WasteDay.currency, WasteDay.day)
)


async def waste_report(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    since: datetime,
    until: datetime,
    pricer: GpuPricer,
    open_advice: Sequence[RecommendationRead] | None = None,
) -> WasteReport:
    """The organization's idle GPU-hours per day with their cost, and what its open advice
    would save. A project's API key sees its project's tenancies only (computed from the
    rollups on the spot; the organization-wide days are kept by each analysis).
    ``open_advice``: what :func:`list_recommendations` answered this scope for the open
    state, when the caller already has it (the portal's page lists it too)."""
    scope.require(org_id)
    if scope.project_id:
        days = await _project_days(db, scope, org_id, since, until, pricer)
    else:
        values = {"org_id": org_id, "since": since.date(),
                  "until": until.date() + timedelta(days=1)}  # fmt: skip
        rows = await db.execute(_WASTE_DAYS, values)
        days = [DayWaste(d.org_id, d.day, d.currency, d.gpu_hours, d.idle_gpu_hours, d.wasted)
                for d in rows.scalars()]  # fmt: skip
    by_currency: dict[str, list[DayWaste]] = defaultdict(list)
    for day in days:
        by_currency[day.currency].append(day)
    open_recs = (
        open_advice if open_advice is not None else await list_recommendations(db, scope, org_id)
    )
    savings: dict[str, Decimal] = defaultdict(Decimal)
    for rec in open_recs:
        savings[rec.currency] += rec.monthly_savings
    currencies = [
        CurrencyWaste(
            currency=currency, wasted=sum((d.wasted for d in rows), Decimal(0)),
            gpu_hours=round(sum(d.gpu_hours for d in rows), 2),
            idle_gpu_hours=round(sum(d.idle_gpu_hours for d in rows), 2),
            open_savings_per_month=savings.get(currency, Decimal(0)),
            days=[WasteDayRead(d.day.isoformat(), d.gpu_hours, d.idle_gpu_hours, d.wasted)
                  for d in rows],
        )
        for currency, rows in sorted(by_currency.items())
    ]  # fmt: skip
    for currency in sorted(set(savings) - set(by_currency)):
        currencies.append(CurrencyWaste(currency, Decimal(0), 0.0, 0.0, savings[currency], []))
    return WasteReport(
        org_id=org_id, since=since.date().isoformat(), until=until.date().isoformat(),
        open_recommendations=len(open_recs),
        energy_kwh_month=sum((r.energy_kwh_month for r in open_recs), Decimal(0)),
        co2e_kg_month=sum((r.co2e_kg_month for r in open_recs), Decimal(0)),
        currencies=currencies,
    )  # fmt: skip


async def _project_days(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    since: datetime,
    until: datetime,
    pricer: GpuPricer,
) -> list[DayWaste]:
    assert scope.project_id is not None
    ids = await tenancy_ids_of_project(db, org_id, scope.project_id)
    kinds = {t.id: t.kind for t in await live_tenancies(db, [org_id]) if t.id in set(ids)}
    start = since.replace(hour=0, minute=0, second=0, microsecond=0)
    end = until.replace(minute=0, second=0, microsecond=0)  # whole hours, as the analysis
    return await waste_days(db, pricer, kinds, start, end, Thresholds(), [org_id], ids)
