"""Insights API: the waste report, recommendations (apply, dismiss, snooze) and an
on-demand analysis of one organization."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import FieldError, InvalidInput
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.insights import service
from control_plane.insights.analysis import GpuPricer
from control_plane.insights.schemas import (
    AnalysisResult,
    Dismiss,
    RecommendationRead,
    Snooze,
    WasteReport,
)
from control_plane.settings import Settings
from control_plane.tenancies.wiring import wake_reconciler

__all__ = ["ROUTES"]

OrgId = Annotated[str, Parameter(max_length=40)]
RecId = Annotated[str, Parameter(max_length=40)]


def provide_apply_deps(
    request: Request[Any, Any, Any], clock: Clock, settings: Settings
) -> service.ApplyDeps:
    return service.ApplyDeps(clock=clock, settings=settings, drivers=request.app.state.drivers)


def provide_pricer(request: Request[Any, Any, Any]) -> GpuPricer:
    pricer: GpuPricer = request.app.state.gpu_prices
    return pricer


class RecommendationController(Controller):
    path = "/api/v1/orgs/{org_id:str}/recommendations"
    tags = ["insights"]
    dependencies = {
        "apply_deps": Provide(provide_apply_deps, sync_to_thread=False),
        "pricer": Provide(provide_pricer, sync_to_thread=False),
    }

    @get("/", opt=tenant(Permission.INSIGHTS_READ),
         summary="Right-sizing and waste advice, biggest monthly savings first")  # fmt: skip
    async def list_recommendations(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession,
        states: Annotated[str, QueryParameter(name="state", max_length=60, description=(
            "comma-separated: open, applied, dismissed, snoozed, resolved"))] = "open",
    ) -> list[RecommendationRead]:  # fmt: skip
        wanted = [s.strip() for s in states.split(",") if s.strip()]
        unknown = sorted(set(wanted) - service.STATES)
        if unknown or not wanted:
            raise InvalidInput(detail=f"Unknown state(s): {', '.join(unknown) or '(none)'}.",
                               errors=[FieldError("query.state", "unknown state")])  # fmt: skip
        return await service.list_recommendations(db, tenant, org_id, wanted)

    @get("/{rec_id:str}", opt=tenant(Permission.INSIGHTS_READ))
    async def get_recommendation(
        self, org_id: OrgId, rec_id: RecId, tenant: TenantScope, db: AsyncSession
    ) -> RecommendationRead:
        return await service.get(db, tenant, org_id, rec_id)

    @post("/{rec_id:str}/apply", opt=tenant(Permission.INSIGHTS_WRITE), status_code=HTTP_200_OK,
          summary="Carry the advice out (resize, release, schedule or scale)")  # fmt: skip
    async def apply_recommendation(
        self, request: Request[Any, Any, Any], org_id: OrgId, rec_id: RecId,
        tenant: TenantScope, db: AsyncSession, apply_deps: service.ApplyDeps,
    ) -> RecommendationRead:  # fmt: skip
        applied = await service.apply(db, tenant, org_id, rec_id, apply_deps)
        wake_reconciler(request)
        return applied

    @post("/{rec_id:str}/dismiss", opt=tenant(Permission.INSIGHTS_WRITE), status_code=HTTP_200_OK)
    async def dismiss_recommendation(
        self, org_id: OrgId, rec_id: RecId, data: Dismiss, tenant: TenantScope,
        db: AsyncSession, clock: Clock,
    ) -> RecommendationRead:  # fmt: skip
        return await service.dismiss(db, tenant, org_id, rec_id, data.reason, clock.now())

    @post("/{rec_id:str}/snooze", opt=tenant(Permission.INSIGHTS_WRITE), status_code=HTTP_200_OK)
    async def snooze_recommendation(
        self, org_id: OrgId, rec_id: RecId, data: Snooze, tenant: TenantScope,
        db: AsyncSession, clock: Clock,
    ) -> RecommendationRead:  # fmt: skip
        return await service.snooze(db, tenant, org_id, rec_id, data.days, clock.now())

    @post("/analyze", opt=tenant(Permission.INSIGHTS_WRITE), status_code=HTTP_200_OK,
          summary="Analyse the organization's GPUs now (also runs in the background)")  # fmt: skip
    async def analyze_now(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession, clock: Clock,
        settings: Settings, pricer: GpuPricer,
    ) -> AnalysisResult:  # fmt: skip
        tenant.require(org_id, Permission.INSIGHTS_WRITE)
        return await service.run_analysis(db, pricer, clock, settings, [org_id])


class WasteController(Controller):
    path = "/api/v1/orgs/{org_id:str}/waste"
    tags = ["insights"]
    dependencies = {"pricer": Provide(provide_pricer, sync_to_thread=False)}

    @get(
        "/",
        opt=tenant(Permission.INSIGHTS_READ),
        summary="Idle GPU-hours and their cost per day, and what open advice would save",
    )
    async def waste(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession, clock: Clock,
        pricer: GpuPricer, days: Annotated[int, Parameter(ge=1, le=400)] = 30,
    ) -> WasteReport:  # fmt: skip
        until = clock.now().astimezone(UTC)
        since = until - timedelta(days=days)
        return await service.waste_report(db, tenant, org_id, since, until, pricer)


ROUTES = [RecommendationController, WasteController]
