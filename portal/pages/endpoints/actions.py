"""The forms that change an endpoint (scale, traffic split, approve or reject a version,
delete) and the organization's model governance switch. Each answers with a redirect, or
the page again with the refusal next to the field."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, post
from litestar.params import Parameter
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.endpoints import governance, service
from control_plane.endpoints.schemas import ApprovalDecision, GovernanceSet, ScaleSet, TrafficSplit
from control_plane.errors import NotFound, ProblemError
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.settings import Settings
from control_plane.tenancies.wiring import wake_reconciler
from portal.forms import FormState, convert, discard, read_form
from portal.pages.endpoints.common import EndpointName, deps_of, org_of
from portal.pages.endpoints.detail import show

VersionNumber = Annotated[int, Parameter(ge=1, le=100_000)]
_SCALE_HINTS = {
    "min_replicas": "Give a whole number from 0 to 16.",
    "max_replicas": "Give a whole number from 0 to 16.",
    "replicas": "Give a whole number within the range, or leave it empty.",
}


def _org(scope: TenantScope) -> str:
    org_id = org_of(scope)
    if org_id is None:
        raise NotFound(detail="No such endpoint.")
    return org_id


def _to(name: str, done: str) -> Redirect:
    return Redirect(path=f"/endpoints/{name}?done={done}", status_code=HTTP_303_SEE_OTHER)


@post("/endpoints/{name:str}/scale", opt=tenant(Permission.ENDPOINTS_WRITE),
      name="portal:endpoint-scale")  # fmt: skip
async def endpoint_scale(
    request: Request[Any, Any, Any],
    name: EndpointName,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Response[Any]:
    org_id = _org(tenant)
    form = await read_form(request, ["min_replicas", "max_replicas", "replicas"])
    values = {k: v for k, v in form.values.items() if v}
    data = convert(form, ScaleSet, values, _SCALE_HINTS)
    status = 400
    if data is not None:
        try:
            await service.scale(db, tenant, org_id, name, data, deps_of(request, clock, settings))
        except NotFound:
            raise
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
            status = problem.status
        else:
            wake_reconciler(request)
            return _to(name, "scaled")
    form.message = form.message or "The replica range was not changed; check the fields."
    return await show(request, db, tenant, settings, clock, name, form=form, form_id="scale",
                      status_code=status)  # fmt: skip


@post("/endpoints/{name:str}/split", opt=tenant(Permission.ENDPOINTS_WRITE),
      name="portal:endpoint-split")  # fmt: skip
async def endpoint_split(
    request: Request[Any, Any, Any],
    name: EndpointName,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Response[Any]:
    org_id = _org(tenant)
    raw = await request.form()
    form = FormState(values={k: str(v).strip() for k, v in raw.items() if k.startswith("percent_")})
    shares = {k.removeprefix("percent_"): v for k, v in form.values.items()}
    data = convert(form, TrafficSplit, {"percent": shares}, {})
    status = 400
    if data is not None:
        try:
            await service.split(db, tenant, org_id, name, data, deps_of(request, clock, settings))
        except NotFound:
            raise
        except ProblemError as problem:
            await discard(db, problem)
            form.message = problem.detail
            status = problem.status
        else:
            wake_reconciler(request)
            return _to(name, "split")
    if not form.message:
        form.message = "Give each version a whole percentage; together they make 100."
    return await show(request, db, tenant, settings, clock, name, form=form, form_id="split",
                      status_code=status)  # fmt: skip


@post("/endpoints/{name:str}/versions/{number:int}/decision",
      opt=tenant(Permission.MODELS_VALIDATE), name="portal:endpoint-decide")  # fmt: skip
async def endpoint_decide(
    request: Request[Any, Any, Any],
    name: EndpointName,
    number: VersionNumber,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Response[Any]:
    org_id = _org(tenant)
    form = await read_form(request, ["decision", "note"])
    data = convert(form, ApprovalDecision, form.values, {"decision": "Approve or reject."})
    status = 400
    if data is not None:
        deps = deps_of(request, clock, settings)
        try:
            await governance.decide(db, tenant, org_id, name, number, data, deps)
        except NotFound:
            raise
        except ProblemError as problem:
            await discard(db, problem)
            form.message = problem.detail
            status = problem.status
        else:
            wake_reconciler(request)
            return _to(name, "approved" if data.decision == "approve" else "rejected")
    return await show(request, db, tenant, settings, clock, name, form=form,
                      form_id=f"decide-{number}", status_code=status)  # fmt: skip


@post("/endpoints/{name:str}/delete", opt=tenant(Permission.ENDPOINTS_WRITE),
      name="portal:endpoint-delete")  # fmt: skip
async def endpoint_delete(
    request: Request[Any, Any, Any],
    name: EndpointName,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Redirect:
    org_id = _org(tenant)
    await service.delete(db, tenant, org_id, name, deps_of(request, clock, settings))
    wake_reconciler(request)
    return Redirect(path="/endpoints?done=deleted", status_code=HTTP_303_SEE_OTHER)


@post("/endpoints/governance", opt=tenant(Permission.MODELS_VALIDATE),
      name="portal:endpoint-governance")  # fmt: skip
async def endpoints_governance(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Redirect:
    org_id = _org(tenant)
    form = await read_form(request, ["require_approval"])
    data = GovernanceSet(require_approval=form.values["require_approval"] == "on")
    await governance.set_governance(db, tenant, org_id, data, deps_of(request, clock, settings))
    done = "governed" if data.require_approval else "ungoverned"
    return Redirect(path=f"/endpoints?done={done}", status_code=HTTP_303_SEE_OTHER)


ROUTES: list[Any] = [
    endpoints_governance,
    endpoint_scale,
    endpoint_split,
    endpoint_decide,
    endpoint_delete,
]
