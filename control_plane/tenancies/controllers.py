"""Tenancies API: tenancies and their timelines (tenants), shapes and quotas (operators
define them, everyone signed in reads them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, delete, get, post, put
from litestar.di import Provide
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.budget_port import require_budget
from control_plane.clock import Clock
from control_plane.http.idempotency import SECRET_ANSWER
from control_plane.http.pagination import Page, PageRequest
from control_plane.identity.authz import ProviderScope, TenantScope, authenticated, provider, tenant
from control_plane.identity.roles import Permission, ProviderPermission
from control_plane.settings import Settings
from control_plane.sovereignty.residency import service as residency
from control_plane.tenancies import machine_access, quotas, service, shapes
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.lifecycle import TenancyState
from control_plane.tenancies.schemas import (
    ANY_REGION,
    ConsoleRead,
    CredentialRead,
    CredentialReveal,
    OperatorConsoleRequest,
    PowerRequest,
    PowerResult,
    QuotaRead,
    QuotaSet,
    ShapeCreate,
    ShapeRead,
    ShapeSuggestion,
    TenancyCreate,
    TenancyEventRead,
    TenancyRead,
    TenancyResize,
    TenancySchedule,
    WorkloadProfile,
)
from control_plane.tenancies.stranded import RegionStranded, stranded_capacity
from control_plane.tenancies.wiring import wake_reconciler

OrgId = Annotated[str, Parameter(max_length=40)]
TenancyId = Annotated[str, Parameter(max_length=40)]
RegionCode = Annotated[str, Parameter(max_length=32)]
ShapeName = Annotated[str, Parameter(max_length=32)]


def provide_drivers(request: Request[Any, Any, Any]) -> Drivers:
    drivers: Drivers = request.app.state.drivers
    return drivers


class TenancyController(Controller):
    path = "/api/v1/orgs/{org_id:str}/tenancies"
    tags = ["tenancies"]
    dependencies = {"drivers": Provide(provide_drivers, sync_to_thread=False)}

    @get("/", opt=tenant(Permission.TENANCIES_READ), summary="Tenancies, newest first")
    async def list_tenancies(
        self,
        org_id: OrgId,
        tenant: TenantScope,
        db: AsyncSession,
        page: PageRequest,
        state_filter: Annotated[TenancyState | None, QueryParameter(name="state")] = None,
        kind: Annotated[
            Literal["bare_metal", "vm", "kubernetes", "slurm", "inference"] | None, Parameter()
        ] = None,
        region: Annotated[str | None, Parameter(max_length=32)] = None,
    ) -> Page[TenancyRead]:
        return await service.list_tenancies(
            db, tenant, org_id, page, state=state_filter, kind=kind, region=region
        )

    @post(
        "/",
        opt=tenant(Permission.TENANCIES_WRITE),
        status_code=HTTP_201_CREATED,
        summary="Create a tenancy: residency, quota and placement are checked at once",
    )
    async def create_tenancy(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        data: TenancyCreate,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
        drivers: Drivers,
    ) -> TenancyRead:
        await require_budget(request.app.state, org_id, tenant.project_id or data.project_id)
        created = await service.create(
            db, tenant, org_id, data, clock=clock, settings=settings, drivers=drivers
        )
        wake_reconciler(request)
        return created

    @get("/{tenancy_id:str}", opt=tenant(Permission.TENANCIES_READ))
    async def get_tenancy(
        self, org_id: OrgId, tenancy_id: TenancyId, tenant: TenantScope, db: AsyncSession
    ) -> TenancyRead:
        return await service.get(db, tenant, org_id, tenancy_id)

    @get(
        "/{tenancy_id:str}/events",
        opt=tenant(Permission.TENANCIES_READ),
        summary="The tenancy's timeline, oldest first",
    )
    async def tenancy_events(
        self,
        org_id: OrgId,
        tenancy_id: TenancyId,
        tenant: TenantScope,
        db: AsyncSession,
        page: PageRequest,
    ) -> Page[TenancyEventRead]:
        return await service.events(db, tenant, org_id, tenancy_id, page)

    @post(
        "/{tenancy_id:str}/resize",
        opt=tenant(Permission.TENANCIES_WRITE),
        status_code=HTTP_200_OK,
        summary="Change the GPUs of an active tenancy (re-placed atomically)",
    )
    async def resize_tenancy(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        tenancy_id: TenancyId,
        data: TenancyResize,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
        drivers: Drivers,
    ) -> TenancyRead:
        resized = await service.resize(
            db, tenant, org_id, tenancy_id, data, clock=clock, settings=settings, drivers=drivers
        )
        wake_reconciler(request)
        return resized

    @post(
        "/{tenancy_id:str}/schedule",
        opt=tenant(Permission.TENANCIES_WRITE),
        status_code=HTTP_200_OK,
        summary="Release automatically after idle minutes (or never)",
    )
    async def schedule_tenancy(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        tenancy_id: TenancyId,
        data: TenancySchedule,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> TenancyRead:
        scheduled = await service.set_schedule(db, tenant, org_id, tenancy_id, data, clock=clock)
        wake_reconciler(request)
        return scheduled

    @post(
        "/{tenancy_id:str}/power",
        opt=tenant(Permission.TENANCIES_WRITE),
        status_code=HTTP_200_OK,
        summary="Start, stop or reboot the tenancy's machines (VMs)",
    )
    async def power_tenancy(
        self,
        org_id: OrgId,
        tenancy_id: TenancyId,
        data: PowerRequest,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        drivers: Drivers,
    ) -> PowerResult:
        detail = await machine_access.power(
            db, tenant, org_id, tenancy_id, data.action, drivers=drivers,
            actor=service.actor_from(tenant), clock=clock,
        )  # fmt: skip
        return PowerResult(tenancy_id=tenancy_id, action=data.action, detail=detail)

    @post(
        "/{tenancy_id:str}/console",
        opt=tenant(Permission.TENANCIES_WRITE),
        status_code=HTTP_200_OK,
        summary="A short-lived link to the machine's console (VMs)",
        cache_control=SECRET_ANSWER,
    )
    async def tenancy_console(
        self,
        org_id: OrgId,
        tenancy_id: TenancyId,
        tenant: TenantScope,
        db: AsyncSession,
        drivers: Drivers,
    ) -> ConsoleRead:
        return await machine_access.console(db, tenant, org_id, tenancy_id, drivers=drivers)

    @get(
        "/{tenancy_id:str}/credential",
        opt=tenant(Permission.TENANCIES_READ),
        summary="The tenancy's access credential (kubeconfig): when issued, whether shown",
    )
    async def credential_status(
        self, org_id: OrgId, tenancy_id: TenancyId, tenant: TenantScope, db: AsyncSession
    ) -> CredentialRead:
        return await machine_access.credential_status(db, tenant, org_id, tenancy_id)

    @post(
        "/{tenancy_id:str}/credential/reveal",
        opt=tenant(Permission.TENANCIES_WRITE),
        status_code=HTTP_200_OK,
        summary="Show the credential once (it is not kept afterwards)",
        cache_control=SECRET_ANSWER,
    )
    async def reveal_credential(
        self,
        org_id: OrgId,
        tenancy_id: TenancyId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> CredentialReveal:
        return await machine_access.reveal_credential(
            db, tenant, org_id, tenancy_id, actor=service.actor_from(tenant), clock=clock,
            settings=settings,
        )  # fmt: skip

    @post(
        "/{tenancy_id:str}/credential/rotate",
        opt=tenant(Permission.TENANCIES_WRITE),
        status_code=HTTP_200_OK,
        summary="Invalidate every earlier credential and issue a new one (reveal it once)",
    )
    async def rotate_credential(
        self,
        org_id: OrgId,
        tenancy_id: TenancyId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
        drivers: Drivers,
    ) -> CredentialRead:
        return await machine_access.rotate_credential(
            db, tenant, org_id, tenancy_id, drivers=drivers, actor=service.actor_from(tenant),
            clock=clock, settings=settings,
        )  # fmt: skip

    @post(
        "/{tenancy_id:str}/release",
        opt=tenant(Permission.TENANCIES_WRITE),
        status_code=HTTP_200_OK,
        summary="Give the tenancy back: taken down, cleaned, GPUs returned to the pool",
    )
    async def release_tenancy(
        self,
        request: Request[Any, Any, Any],
        org_id: OrgId,
        tenancy_id: TenancyId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> TenancyRead:
        released = await service.release(
            db, tenant, org_id, tenancy_id, clock=clock, settings=settings
        )
        wake_reconciler(request)
        return released


class CapacityController(Controller):
    """What an organization may ask for: its quotas and the shapes that fit a workload."""

    path = "/api/v1/orgs/{org_id:str}"
    tags = ["tenancies"]

    @get("/quotas", opt=tenant(Permission.TENANCIES_READ), summary="GPU quotas and usage")
    async def org_quotas(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession
    ) -> list[QuotaRead]:
        tenant.require(org_id)
        return await quotas.for_org(db, org_id)

    @get(
        "/shape-suggestion",
        opt=tenant(Permission.TENANCIES_READ),
        summary="The cheapest shape, in a region the policy allows, that fits a workload",
    )
    async def suggest_shape(
        self,
        org_id: OrgId,
        tenant: TenantScope,
        db: AsyncSession,
        gpu_memory_gib: Annotated[int, Parameter(ge=1, le=100_000)],
        gpu_count: Annotated[int, Parameter(ge=1, le=64)] = 1,
        interconnect: Literal["nvlink", "any"] = "any",
        region: Annotated[str, Parameter(max_length=32)] = ANY_REGION,
    ) -> ShapeSuggestion:
        tenant.require(org_id)
        allowed = await residency.allowed_regions(db, org_id)
        if region != ANY_REGION:
            allowed = [r for r in allowed if r == region]
        profile = WorkloadProfile(
            gpu_memory_gib=gpu_memory_gib, gpu_count=gpu_count, interconnect=interconnect,
            region=region,
        )  # fmt: skip
        return await shapes.suggest(db, profile, allowed)


class ShapeController(Controller):
    path = "/api/v1/regions/{code:str}/shapes"
    tags = ["tenancies"]

    @get("/", opt=authenticated(), summary="Shapes offered in a region, cheapest first")
    async def list_shapes(self, code: RegionCode, db: AsyncSession) -> list[ShapeRead]:
        return await shapes.list_shapes(db, [code])

    @post("/", opt=provider(ProviderPermission.CAPACITY_WRITE), status_code=HTTP_201_CREATED)
    async def create_shape(
        self,
        code: RegionCode,
        data: ShapeCreate,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
    ) -> ShapeRead:
        return await shapes.create_shape(db, clock, code, data)

    @delete(
        "/{name:str}",
        opt=provider(ProviderPermission.CAPACITY_WRITE),
        status_code=HTTP_204_NO_CONTENT,
    )
    async def delete_shape(
        self, code: RegionCode, name: ShapeName, operator: ProviderScope, db: AsyncSession
    ) -> None:
        await shapes.delete_shape(db, code, name)


class QuotaController(Controller):
    path = "/api/v1/quotas"
    tags = ["tenancies"]

    @get("/", opt=provider(ProviderPermission.INVENTORY_READ), summary="Every quota rule")
    async def list_rules(self, operator: ProviderScope, db: AsyncSession) -> list[QuotaRead]:
        return await quotas.all_rules(db)

    @put(
        "/",
        opt=provider(ProviderPermission.CAPACITY_WRITE),
        summary="Set a default (org '*') or per-organization GPU quota",
    )
    async def set_rule(
        self, data: QuotaSet, operator: ProviderScope, db: AsyncSession, clock: Clock
    ) -> QuotaRead:
        return await quotas.set_rule(db, data, clock.now())


class OperatorConsoleController(Controller):
    """Provider operators reach a tenant's machine only under an approved access grant."""

    path = "/api/v1/operator/orgs/{org_id:str}/tenancies/{tenancy_id:str}/console"
    tags = ["tenancies"]
    dependencies = {"drivers": Provide(provide_drivers, sync_to_thread=False)}

    @post(
        "/",
        opt=provider(ProviderPermission.NODES_OPERATE),
        status_code=HTTP_200_OK,
        summary="An operator's console link to a tenant's VM (needs an approved access grant)",
        cache_control=SECRET_ANSWER,
    )
    async def operator_console(
        self,
        org_id: OrgId,
        tenancy_id: TenancyId,
        data: OperatorConsoleRequest,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
        drivers: Drivers,
    ) -> ConsoleRead:
        return await machine_access.operator_console(
            db, operator, org_id, tenancy_id, data.purpose, drivers=drivers, clock=clock,
            settings=settings,
        )  # fmt: skip


class StrandedController(Controller):
    path = "/api/v1/fleet/stranded"
    tags = ["tenancies"]

    @get(
        "/",
        opt=provider(ProviderPermission.INVENTORY_READ),
        summary="Free GPU share each offered shape cannot use (fragmentation), per region",
    )
    async def stranded(self, operator: ProviderScope, db: AsyncSession) -> list[RegionStranded]:
        return await stranded_capacity(db)


ROUTES: list[ControllerRouterHandler] = [
    TenancyController,
    CapacityController,
    ShapeController,
    QuotaController,
    StrandedController,
    OperatorConsoleController,
]
