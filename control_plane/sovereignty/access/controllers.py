"""Operator access approval API: operators ask, tenants decide, auditors read the report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import Controller, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, Schema
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.recorder import audited_read
from control_plane.clock import Clock
from control_plane.http.pagination import Page, PageRequest
from control_plane.identity.authz import ProviderScope, TenantScope, provider, tenant
from control_plane.identity.roles import Permission, ProviderPermission
from control_plane.settings import Settings
from control_plane.sovereignty.access import enforcement, notifications, report, service
from control_plane.sovereignty.access.lifecycle import AccessState
from control_plane.sovereignty.access.schemas import (
    AccessDeny,
    AccessNotificationRead,
    AccessReport,
    AccessRequestCreate,
    AccessRequestDetail,
    AccessRequestRead,
    AccessReview,
    BreakGlassCreate,
    SupportSnapshot,
)

OrgId = Annotated[str, Parameter(max_length=40)]
RequestId = Annotated[str, Parameter(max_length=40)]
StateFilter = Annotated[
    AccessState | None, QueryParameter(name="state", description="Only requests in this state")
]


@dataclass
class _ReportOperation(Operation):
    """The report's 200 answer is JSON or, with ``format=csv``, CSV: document both."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        content = getattr(ok, "content", None)
        if content is not None:
            content["text/csv"] = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))


def _audit(action: str) -> dict[str, Any]:
    """The ledger action the request-level entry is recorded under."""
    return {"audit_action": action}


class OperatorAccessController(Controller):
    path = "/api/v1/access-requests"
    tags = ["access approval"]

    @post(
        "/",
        opt={**provider(ProviderPermission.ACCESS_REQUEST), **_audit("access.request")},
        summary="Ask an organization for access to one of its resources",
    )
    async def create_access_request(
        self,
        data: AccessRequestCreate,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
        operator: ProviderScope,
    ) -> AccessRequestRead:
        return await service.create_request(db, clock, settings, operator, data)

    @get(
        "/",
        opt=provider(ProviderPermission.ACCESS_REQUEST),
        summary="Your own access requests, newest first",
    )
    async def list_own_access_requests(
        self,
        db: AsyncSession,
        clock: Clock,
        operator: ProviderScope,
        page: PageRequest,
        request_state: StateFilter = None,
    ) -> Page[AccessRequestRead]:
        return await service.list_own_requests(db, clock, operator, page, request_state)

    @get("/{request_id:str}", opt=provider(ProviderPermission.ACCESS_REQUEST))
    async def get_own_access_request(
        self, request_id: RequestId, db: AsyncSession, clock: Clock, operator: ProviderScope
    ) -> AccessRequestDetail:
        return await service.get_own_request(db, clock, operator, request_id)

    @post(
        "/{request_id:str}/withdraw",
        opt={**provider(ProviderPermission.ACCESS_REQUEST), **_audit("access.withdraw")},
        status_code=HTTP_200_OK,
        summary="Take back a request nobody has decided yet",
    )
    async def withdraw_access_request(
        self, request_id: RequestId, db: AsyncSession, clock: Clock, operator: ProviderScope
    ) -> AccessRequestRead:
        return await service.withdraw(db, clock, operator, request_id)


@post(
    "/api/v1/break-glass",
    opt={**provider(ProviderPermission.BREAK_GLASS), **_audit("access.break_glass")},
    tags=["access approval"],
    summary="Emergency access: active at once, tenant notified, reviewed afterwards",
)
async def open_break_glass(
    data: BreakGlassCreate,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    operator: ProviderScope,
) -> AccessRequestRead:
    return await service.open_break_glass(db, clock, settings, operator, data)


@get(
    "/api/v1/operator/orgs/{org_id:str}/support-data",
    opt={**provider(ProviderPermission.ACCESS_REQUEST), **audited_read()},
    tags=["access approval"],
    summary="An organization's support snapshot (needs an approved support_data grant)",
)
async def get_support_data(
    org_id: OrgId,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    operator: ProviderScope,
    purpose: Annotated[
        str,
        Parameter(
            min_length=1,
            max_length=200,
            pattern=r"^[^\x00-\x1f\x7f\ud800-\udfff]+$",
            description="Why, for the tenant's ledger",
        ),
    ] = "read support snapshot",
) -> SupportSnapshot:
    return await enforcement.support_snapshot(db, clock, settings, operator, org_id, purpose)


class TenantAccessController(Controller):
    path = "/api/v1/orgs/{org_id:str}"
    tags = ["access approval"]

    @get("/access-requests", opt=tenant(Permission.ACCESS_READ))
    async def list_org_access_requests(
        self,
        org_id: OrgId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        page: PageRequest,
        request_state: StateFilter = None,
        needs_review: Annotated[
            bool, Parameter(description="Only break-glass access not yet reviewed")
        ] = False,
    ) -> Page[AccessRequestRead]:
        return await service.list_org_requests(
            db, clock, tenant, org_id, page, request_state, needs_review
        )

    @get("/access-requests/{request_id:str}", opt=tenant(Permission.ACCESS_READ))
    async def get_org_access_request(
        self,
        org_id: OrgId,
        request_id: RequestId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> AccessRequestDetail:
        return await service.get_org_request(db, clock, tenant, org_id, request_id)

    @post(
        "/access-requests/{request_id:str}/approve",
        opt={**tenant(Permission.ACCESS_APPROVE), **_audit("access.approve")},
        status_code=HTTP_200_OK,
    )
    async def approve_access_request(
        self,
        org_id: OrgId,
        request_id: RequestId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> AccessRequestRead:
        return await service.approve(db, clock, tenant, org_id, request_id)

    @post(
        "/access-requests/{request_id:str}/deny",
        opt={**tenant(Permission.ACCESS_APPROVE), **_audit("access.deny")},
        status_code=HTTP_200_OK,
    )
    async def deny_access_request(
        self,
        org_id: OrgId,
        request_id: RequestId,
        data: AccessDeny,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> AccessRequestRead:
        return await service.deny(db, clock, tenant, org_id, request_id, data.reason)

    @post(
        "/access-requests/{request_id:str}/revoke",
        opt={**tenant(Permission.ACCESS_APPROVE), **_audit("access.revoke")},
        status_code=HTTP_200_OK,
    )
    async def revoke_access_request(
        self,
        org_id: OrgId,
        request_id: RequestId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> AccessRequestRead:
        return await service.revoke(db, clock, tenant, org_id, request_id)

    @post(
        "/access-requests/{request_id:str}/review",
        opt={**tenant(Permission.ACCESS_APPROVE), **_audit("access.review")},
        status_code=HTTP_200_OK,
        summary="Accept or dispute a break-glass access afterwards",
    )
    async def review_access_request(
        self,
        org_id: OrgId,
        request_id: RequestId,
        data: AccessReview,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> AccessRequestRead:
        return await service.review(db, clock, tenant, org_id, request_id, data)

    @get(
        "/access-report",
        opt=tenant(Permission.ACCESS_READ),
        summary="Every access request, decision, grant window and use (JSON or CSV)",
        operation_class=_ReportOperation,
        responses={200: ResponseSpec(AccessReport, description="The report (JSON, or CSV)")},
    )
    async def get_access_report(
        self,
        org_id: OrgId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        report_format: Annotated[Literal["json", "csv"], QueryParameter(name="format")] = "json",
    ) -> Response[Any]:
        built = await report.access_report(db, clock, tenant, org_id)
        if report_format == "json":
            return Response(built)
        return Response(
            report.report_csv(built),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="access-report-{org_id}.csv"'},
        )

    @get("/access-notifications", opt=tenant(Permission.ACCESS_READ))
    async def list_access_notifications(
        self,
        org_id: OrgId,
        tenant: TenantScope,
        db: AsyncSession,
        page: PageRequest,
        unacknowledged: bool = False,
    ) -> Page[AccessNotificationRead]:
        return await notifications.list_notifications(db, tenant, org_id, page, unacknowledged)

    @post(
        "/access-notifications/{notification_id:str}/acknowledge",
        opt={**tenant(Permission.ACCESS_APPROVE), **_audit("access.acknowledge")},
        status_code=HTTP_200_OK,
    )
    async def acknowledge_access_notification(
        self,
        org_id: OrgId,
        notification_id: RequestId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> AccessNotificationRead:
        return await notifications.acknowledge(db, clock, tenant, org_id, notification_id)


ROUTES: list[ControllerRouterHandler] = [
    OperatorAccessController,
    open_break_glass,
    get_support_data,
    TenantAccessController,
]
