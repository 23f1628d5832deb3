"""Endpoints API: inference endpoints, their versions, traffic splits, approvals, scaling
and timeline, and the organization's model governance setting."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.budget_port import require_budget
from control_plane.clock import Clock
from control_plane.endpoints import governance, service
from control_plane.endpoints.schemas import (
    ApprovalDecision,
    EndpointCreate,
    EndpointEventRead,
    EndpointMetricsRead,
    EndpointRead,
    GovernanceRead,
    GovernanceSet,
    ScaleSet,
    TrafficSplit,
    VersionCreate,
)
from control_plane.http.pagination import Page, PageRequest
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.settings import Settings
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.wiring import wake_reconciler

OrgId = Annotated[str, Parameter(max_length=40)]
EndpointRef = Annotated[str, Parameter(max_length=63, description="endpoint id or name")]
VersionNumber = Annotated[int, Parameter(ge=1, le=100_000)]


def provide_deps(request: Request[Any, Any, Any], clock: Clock, settings: Settings) -> service.Deps:
    drivers: Drivers = request.app.state.drivers
    return service.Deps(clock=clock, settings=settings, drivers=drivers)


class EndpointController(Controller):
    path = "/api/v1/orgs/{org_id:str}/endpoints"
    tags = ["endpoints"]
    dependencies = {"deps": Provide(provide_deps, sync_to_thread=False)}

    @get("/", opt=tenant(Permission.ENDPOINTS_READ), summary="Inference endpoints, newest first")
    async def list_endpoints(
        self,
        org_id: OrgId,
        tenant: TenantScope,
        db: AsyncSession,
        page: PageRequest,
        settings: Settings,
    ) -> Page[EndpointRead]:
        return await service.list_endpoints(db, tenant, org_id, page, settings)

    @post(
        "/",
        opt=tenant(Permission.ENDPOINTS_WRITE),
        status_code=HTTP_201_CREATED,
        summary="Create an endpoint: residency of region and model store, replicas placed",
    )
    async def create_endpoint(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        data: EndpointCreate,
        tenant: TenantScope,
        db: AsyncSession,
        deps: service.Deps,
    ) -> EndpointRead:
        await require_budget(request.app.state, org_id, tenant.project_id or data.project_id)
        created = await service.create(db, tenant, org_id, data, deps)
        wake_reconciler(request)
        return created

    @get("/{ref:str}", opt=tenant(Permission.ENDPOINTS_READ))
    async def get_endpoint(
        self,
        org_id: OrgId,
        ref: EndpointRef,
        tenant: TenantScope,
        db: AsyncSession,
        settings: Settings,
    ) -> EndpointRead:
        return await service.get(db, tenant, org_id, ref, settings)

    @get(
        "/{ref:str}/events",
        opt=tenant(Permission.ENDPOINTS_READ),
        summary="The endpoint's timeline, oldest first",
    )
    async def endpoint_events(
        self,
        org_id: OrgId,
        ref: EndpointRef,
        tenant: TenantScope,
        db: AsyncSession,
        page: PageRequest,
    ) -> Page[EndpointEventRead]:
        return await service.events(db, tenant, org_id, ref, page)

    @get(
        "/{ref:str}/metrics",
        opt=tenant(Permission.ENDPOINTS_READ),
        summary="Requests, errors, latency and TTFT percentiles, tokens, drift of lengths",
    )
    async def endpoint_metrics(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        ref: EndpointRef,
        tenant: TenantScope,
        db: AsyncSession,
        settings: Settings,
    ) -> EndpointMetricsRead:
        """Since this process started (each gateway process counts what it serves)."""
        endpoint = await service.get(db, tenant, org_id, ref, settings)
        stats = request.app.state.gateway.stats.of(endpoint.id)
        drift = {k: dataclasses.asdict(v) for k, v in stats.drift().items()}
        return msgspec.convert(
            {**stats.summary(), "endpoint_id": endpoint.id, "drift": drift}, EndpointMetricsRead
        )

    @put(
        "/{ref:str}/scale",
        opt=tenant(Permission.ENDPOINTS_WRITE),
        summary="Set the replica range (and optionally the current count)",
    )
    async def scale_endpoint(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        ref: EndpointRef,
        data: ScaleSet,
        tenant: TenantScope,
        db: AsyncSession,
        deps: service.Deps,
    ) -> EndpointRead:
        result = await service.scale(db, tenant, org_id, ref, data, deps)
        wake_reconciler(request)
        return result

    @post(
        "/{ref:str}/versions",
        opt=tenant(Permission.ENDPOINTS_WRITE),
        status_code=HTTP_201_CREATED,
        summary="Add a model version (a canary)",
    )
    async def add_version(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        ref: EndpointRef,
        data: VersionCreate,
        tenant: TenantScope,
        db: AsyncSession,
        deps: service.Deps,
    ) -> EndpointRead:
        result = await service.add_version(db, tenant, org_id, ref, data, deps)
        wake_reconciler(request)
        return result

    @put(
        "/{ref:str}/traffic",
        opt=tenant(Permission.ENDPOINTS_WRITE),
        summary="Split traffic between versions (a version at 0% is retired)",
    )
    async def split_traffic(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        ref: EndpointRef,
        data: TrafficSplit,
        tenant: TenantScope,
        db: AsyncSession,
        deps: service.Deps,
    ) -> EndpointRead:
        result = await service.split(db, tenant, org_id, ref, data, deps)
        wake_reconciler(request)
        return result

    @post(
        "/{ref:str}/versions/{number:int}/decision",
        opt=tenant(Permission.MODELS_VALIDATE),
        status_code=HTTP_200_OK,
        summary="Approve or reject a model version",
    )
    async def decide_version(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        ref: EndpointRef,
        number: VersionNumber,
        data: ApprovalDecision,
        tenant: TenantScope,
        db: AsyncSession,
        deps: service.Deps,
    ) -> EndpointRead:
        result = await governance.decide(db, tenant, org_id, ref, number, data, deps)
        wake_reconciler(request)
        return result

    @delete(
        "/{ref:str}",
        opt=tenant(Permission.ENDPOINTS_WRITE),
        status_code=HTTP_200_OK,
        summary="Delete the endpoint; its replicas are released",
    )
    async def delete_endpoint(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        ref: EndpointRef,
        tenant: TenantScope,
        db: AsyncSession,
        deps: service.Deps,
    ) -> EndpointRead:
        result = await service.delete(db, tenant, org_id, ref, deps)
        wake_reconciler(request)
        return result


class GovernanceController(Controller):
    path = "/api/v1/orgs/{org_id:str}/model-governance"
    tags = ["endpoints"]
    dependencies = {"deps": Provide(provide_deps, sync_to_thread=False)}

    @get(
        "/",
        opt=tenant(Permission.ENDPOINTS_READ),
        summary="Whether model versions need a validator's approval",
    )
    async def get_governance(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession
    ) -> GovernanceRead:
        return await governance.get_governance(db, tenant, org_id)

    @put("/", opt=tenant(Permission.MODELS_VALIDATE))
    async def set_governance(
        self,
        org_id: OrgId,
        data: GovernanceSet,
        tenant: TenantScope,
        db: AsyncSession,
        deps: service.Deps,
    ) -> GovernanceRead:
        return await governance.set_governance(db, tenant, org_id, data, deps)


ROUTES = [EndpointController, GovernanceController]
