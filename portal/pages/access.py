"""Operator access approval in the portal.

Tenant admins decide on requests, revoke grants and review break-glass access; auditors
read the access report; operators ask for access, follow their requests and read a
tenant's support data under a grant. Every page acts on the caller's current organization
(tenants) or on the operator's own requests.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.recorder import audited_read
from control_plane.clock import Clock
from control_plane.errors import NotFound, ProblemError
from control_plane.http.pagination import PageRequest
from control_plane.identity.authz import ProviderScope, TenantScope, provider, tenant
from control_plane.identity.roles import Permission, ProviderPermission
from control_plane.settings import Settings
from control_plane.sovereignty.access import enforcement, notifications, report, service
from control_plane.sovereignty.access.lifecycle import (
    AccessState,
    ReasonCode,
    ResourceType,
    ReviewVerdict,
)
from control_plane.sovereignty.access.schemas import (
    AccessDeny,
    AccessRequestCreate,
    AccessRequestRead,
    AccessReview,
)
from portal.forms import FormState, convert, discard, read_form
from portal.templating import render

ResourceId = Annotated[str, Parameter(max_length=40)]
Done = Annotated[str | None, Parameter(max_length=20)]

REASON_LABELS: dict[str, str] = {
    ReasonCode.CUSTOMER_INITIATED_SUPPORT: "Customer-initiated support",
    ReasonCode.INCIDENT_RESPONSE: "Incident response",
    ReasonCode.HARDWARE_MAINTENANCE: "Hardware maintenance",
    ReasonCode.LEGAL_OR_REGULATORY: "Legal or regulatory",
    ReasonCode.SECURITY_INVESTIGATION: "Security investigation",
}
RESOURCE_LABELS: dict[str, str] = {
    ResourceType.SUPPORT_DATA: "Support data",
    ResourceType.TENANCY: "Tenancy",
    ResourceType.NODE_CONSOLE: "Node console",
}
STATE_BADGES: dict[str, str] = {
    AccessState.PENDING: "draining",
    AccessState.APPROVED: "active",
    AccessState.DENIED: "revoked",
    AccessState.REVOKED: "revoked",
    AccessState.EXPIRED: "expired",
    AccessState.WITHDRAWN: "expired",
}
DURATION_CHOICES: tuple[tuple[int, str], ...] = (
    (15, "15 minutes"),
    (60, "1 hour"),
    (240, "4 hours"),
    (480, "8 hours"),
    (1440, "24 hours"),
    (4320, "72 hours"),
)
NOTICES = {
    "approved": "Access approved: the grant window is open.",
    "denied": "Access denied; the operator sees your reason.",
    "revoked": "Access revoked: the grant no longer works.",
    "reviewed": "Review recorded.",
    "acknowledged": "Notification acknowledged.",
    "requested": "Request sent; the organization's admins decide.",
    "withdrawn": "Request withdrawn.",
}
_REQUEST_HINTS = {
    "org_id": "Give the organization's id or slug.",
    "resource_id": "Use letters, digits and . _ : / - (at most 200 characters).",
    "justification": "Use at most 200 printable characters.",
    "duration_minutes": "Choose one of the listed durations.",
    "reason_code": "Choose one of the listed reasons.",
    "resource_type": "Choose one of the listed resources.",
}
LABELS = {"reasons": REASON_LABELS, "resources": RESOURCE_LABELS, "state_badges": STATE_BADGES}


def _org_of(scope: TenantScope) -> str | None:
    return scope.principal.default_org_id


def _back(path: str, done: str) -> Redirect:
    return Redirect(path=f"{path}?{urlencode({'done': done})}", status_code=HTTP_303_SEE_OTHER)


# Tenants --------------------------------------------------------------------------------------


@get("/access", opt=tenant(Permission.ACCESS_READ), name="portal:access")
async def access_page(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    done: Done = None,
) -> Template:
    return await _access_page(request, db, clock, tenant, NOTICES.get(done or "", ""))


async def _access_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    scope: TenantScope,
    notice: str,
) -> Template:
    org_id = _org_of(scope)
    sections: dict[str, Any] = {}
    if org_id is not None:
        scope.require(org_id)
        page = PageRequest(limit=50, after=None)
        for name, state in (("pending", AccessState.PENDING), ("active", AccessState.APPROVED)):
            listing = await service.list_org_requests(db, clock, scope, org_id, page, state)
            sections[name] = listing.items
        to_review = await service.list_org_requests(db, clock, scope, org_id, page, None, True)
        sections["to_review"] = to_review.items
        sections["recent"] = (await service.list_org_requests(db, clock, scope, org_id, page)).items
    context = {
        "page_title": "Operator access",
        "has_org": org_id is not None,
        "can_decide": bool(org_id and scope.allows(org_id, Permission.ACCESS_APPROVE)),
        "notice": notice,
        **sections,
        **LABELS,
    }
    return await render(request, db, "access/requests.html", context, active="access")


@get(
    "/access/requests/{request_id:str}",
    opt=tenant(Permission.ACCESS_READ),
    name="portal:access-request",
)
async def access_request_page(
    request: Request[Any, Any, Any],
    request_id: ResourceId,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    done: Done = None,
) -> Template:
    return await _request_page(request, db, clock, tenant, request_id, NOTICES.get(done or "", ""))


async def _request_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    scope: TenantScope,
    request_id: str,
    notice: str = "",
    form: FormState | None = None,
    status_code: int = 200,
) -> Template:
    org_id = _org_of(scope)
    if org_id is None:
        raise NotFound(detail="No such access request.")
    detail = await service.get_org_request(db, clock, scope, org_id, request_id)
    context = {
        "page_title": f"Access request {request_id}",
        "detail": detail,
        "item": detail.request,
        "can_decide": scope.allows(org_id, Permission.ACCESS_APPROVE),
        "notice": notice,
        "form": form or FormState(),
        "verdicts": [(str(v), v.value.capitalize()) for v in ReviewVerdict],
        **LABELS,
    }
    return await render(
        request, db, "access/request.html", context, active="access", status_code=status_code
    )


async def _decide(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    scope: TenantScope,
    request_id: str,
    verb: str,
) -> Response[Any]:
    """Approve, deny, revoke or review; a refusal shows the page again with the reason."""
    org_id = _org_of(scope)
    if org_id is None:
        raise NotFound(detail="No such access request.")
    scope.require(org_id, Permission.ACCESS_APPROVE)
    form = await read_form(request, ["reason", "verdict", "comment", "from"])
    back = "/access" if form.values["from"] != "detail" else f"/access/requests/{request_id}"
    status = 400
    try:
        done = await _apply(db, clock, scope, org_id, request_id, verb, form)
    except NotFound:
        raise
    except ProblemError as problem:
        await discard(db, problem)
        form.add_problem(problem)
        done, status = None, problem.status
    if done is not None:
        return _back(back, done)
    form.message = form.message or "Nothing was changed; check the highlighted fields."
    return await _request_page(request, db, clock, scope, request_id, form=form, status_code=status)


async def _apply(
    db: AsyncSession,
    clock: Clock,
    scope: TenantScope,
    org_id: str,
    request_id: str,
    verb: str,
    form: FormState,
) -> str | None:
    if verb == "approve":
        await service.approve(db, clock, scope, org_id, request_id)
        return "approved"
    if verb == "revoke":
        await service.revoke(db, clock, scope, org_id, request_id)
        return "revoked"
    if verb == "deny":
        deny = convert(form, AccessDeny, {"reason": form.values["reason"]}, _DECISION_HINTS)
        if deny is None:
            return None
        await service.deny(db, clock, scope, org_id, request_id, deny.reason)
        return "denied"
    values = {"verdict": form.values["verdict"], "comment": form.values["comment"]}
    verdict = convert(form, AccessReview, values, _DECISION_HINTS)
    if verdict is None:
        return None
    await service.review(db, clock, scope, org_id, request_id, verdict)
    return "reviewed"


_DECISION_HINTS = {
    "reason": "Say why in at most 500 characters.",
    "verdict": "Choose accepted or disputed.",
    "comment": "Use at most 2000 characters.",
}


def _decision_route(verb: str) -> Any:
    @post(
        f"/access/requests/{{request_id:str}}/{verb}",
        opt={**tenant(Permission.ACCESS_APPROVE), "audit_action": f"portal.access_{verb}"},
        name=f"portal:access-{verb}",
    )
    async def decide(
        request: Request[Any, Any, Any],
        request_id: ResourceId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> Response[Any]:
        return await _decide(request, db, clock, tenant, request_id, verb)

    return decide


@post(
    "/access/notifications/{notification_id:str}/acknowledge",
    opt=tenant(Permission.ACCESS_APPROVE),
    name="portal:access-acknowledge",
)
async def acknowledge_notification(
    request: Request[Any, Any, Any],
    notification_id: ResourceId,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
) -> Redirect:
    org_id = _org_of(tenant)
    if org_id is None:
        raise NotFound(detail="No such notification.")
    await notifications.acknowledge(db, clock, tenant, org_id, notification_id)
    return _back("/access", "acknowledged")


@get("/access/report", opt=tenant(Permission.ACCESS_READ), name="portal:access-report")
async def access_report_page(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession, clock: Clock
) -> Template:
    org_id = _org_of(tenant)
    built = await report.access_report(db, clock, tenant, org_id) if org_id else None
    context = {"page_title": "Access report", "report": built, **LABELS}
    return await render(request, db, "access/report.html", context, active="access-report")


@get("/access/report.csv", opt=tenant(Permission.ACCESS_READ), name="portal:access-report-csv")
async def access_report_csv(
    tenant: TenantScope, db: AsyncSession, clock: Clock
) -> Response[str] | Redirect:
    org_id = _org_of(tenant)
    if org_id is None:
        return Redirect(path="/access/report", status_code=HTTP_303_SEE_OTHER)
    built = await report.access_report(db, clock, tenant, org_id)
    return Response(
        report.report_csv(built),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="access-report-{org_id}.csv"'},
    )


# Operators ------------------------------------------------------------------------------------


@get(
    "/operator/access",
    opt=provider(ProviderPermission.ACCESS_REQUEST),
    name="portal:operator-access",
)
async def operator_access_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    operator: ProviderScope,
    page: PageRequest,
    done: Done = None,
) -> Template:
    notice = NOTICES.get(done or "", "")
    return await _operator_page(request, db, clock, operator, page, FormState(), notice)


@post(
    "/operator/access",
    opt=provider(ProviderPermission.ACCESS_REQUEST),
    name="portal:operator-access-create",
)
async def operator_access_create(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    operator: ProviderScope,
    page: PageRequest,
) -> Response[Any]:
    names = ["org_id", "resource_type", "resource_id", "reason_code", "justification"]
    form = await read_form(request, [*names, "duration_minutes"])
    values: dict[str, Any] = {name: form.values[name] for name in names}
    values["resource_id"] = values["resource_id"] or None
    values["duration_minutes"] = form.values["duration_minutes"] or 60
    data = convert(form, AccessRequestCreate, values, _REQUEST_HINTS)
    status = 400
    if data is not None:
        try:
            await service.create_request(db, clock, settings, operator, data)
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
            status = problem.status
        else:
            return _back("/operator/access", "requested")
    form.message = form.message or "The request was not sent; check the highlighted fields."
    return await _operator_page(request, db, clock, operator, page, form, status_code=status)


@post(
    "/operator/access/{request_id:str}/withdraw",
    opt=provider(ProviderPermission.ACCESS_REQUEST),
    name="portal:operator-access-withdraw",
)
async def operator_access_withdraw(
    request_id: ResourceId, db: AsyncSession, clock: Clock, operator: ProviderScope
) -> Redirect:
    await service.withdraw(db, clock, operator, request_id)
    return _back("/operator/access", "withdrawn")


async def _operator_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    operator: ProviderScope,
    page: PageRequest,
    form: FormState,
    notice: str = "",
    status_code: int = 200,
) -> Template:
    mine = await service.list_own_requests(db, clock, operator, page)
    context = {
        "page_title": "Access requests",
        "mine": mine,
        "form": form,
        "notice": notice,
        "reason_options": list(REASON_LABELS.items()),
        "resource_options": list(RESOURCE_LABELS.items()),
        "duration_options": [(str(m), label) for m, label in DURATION_CHOICES],
        "home": operator.principal.home_country,
        "support_links": _support_links(mine.items),
        **LABELS,
    }
    return await render(
        request,
        db,
        "access/operator.html",
        context,
        active="operator-access",
        status_code=status_code,
    )


def _support_links(items: list[AccessRequestRead]) -> dict[str, str]:
    """Request id -> the support data page, for open support_data grants."""
    return {
        r.id: f"/operator/access/support?{urlencode({'org_id': r.org_id})}"
        for r in items
        if r.active and r.resource_type is ResourceType.SUPPORT_DATA
    }


@get(
    "/operator/access/support",
    opt={**provider(ProviderPermission.ACCESS_REQUEST), **audited_read()},
    name="portal:operator-support-data",
)
async def support_data_page(
    request: Request[Any, Any, Any],
    org_id: ResourceId,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    operator: ProviderScope,
) -> Template:
    snapshot = await enforcement.support_snapshot(
        db, clock, settings, operator, org_id, "support data page in the portal"
    )
    context = {"page_title": f"Support data: {snapshot.name}", "snapshot": snapshot}
    return await render(request, db, "access/support.html", context, active="operator-access")


ROUTES: list[Any] = [
    access_page,
    access_request_page,
    *(_decision_route(verb) for verb in ("approve", "deny", "revoke", "review")),
    acknowledge_notification,
    access_report_page,
    access_report_csv,
    operator_access_page,
    operator_access_create,
    operator_access_withdraw,
    support_data_page,
]
