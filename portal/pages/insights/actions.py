"""Acting on advice from the dashboard: Apply, Dismiss, Snooze and Analyse now. Each form
answers with a redirect back to the dashboard and a message; a refusal (409 already
decided, 404 gone, a quota or capacity check of the change itself) is shown on the
dashboard with the service's own words and status."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, post
from litestar.params import Parameter
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import ProblemError
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.insights import service
from control_plane.insights.analysis import GpuPricer
from control_plane.settings import Settings
from control_plane.tenancies.wiring import wake_reconciler
from portal.forms import discard, read_form
from portal.pages.billing.common import current_org
from portal.pages.insights.dashboard import FILTERS, SNOOZE_DAYS, dashboard
from portal.pages.tenancies.common import drivers_of

RecId = Annotated[str, Parameter(max_length=40)]


def _write(action: str) -> dict[str, Any]:
    """insights:write, audited under the same action names as the API's."""
    return {**tenant(Permission.INSIGHTS_WRITE), "audit_action": f"insights.{action}"}


def _back(done: str, show: str, rec_id: str = "") -> Redirect:
    query = {"done": done, **({"show": show} if show in FILTERS and show != "open" else {})}
    if rec_id:
        query["rec"] = rec_id
    return Redirect(path=f"/insights?{urlencode(query)}", status_code=HTTP_303_SEE_OTHER)


async def _refused(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    clock: Clock,
    problem: ProblemError,
    show: str,
) -> Response[Any]:
    await discard(db, problem)
    return await dashboard(
        request, db, scope, clock, show=show, failure=problem.detail, status_code=problem.status
    )


@post("/insights/analyse", opt=_write("analyze_now"), name="portal:insights-analyse")
async def analyse_now(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Response[Any]:
    org_id = current_org(tenant)
    tenant.require(org_id, Permission.INSIGHTS_WRITE)
    form = await read_form(request, ["show"])
    pricer: GpuPricer = request.app.state.gpu_prices
    await service.run_analysis(db, pricer, clock, settings, [org_id])
    return _back("analysed", form.values["show"])


@post("/insights/{rec_id:str}/apply", opt=_write("apply_recommendation"),
      name="portal:insight-apply")  # fmt: skip
async def apply_advice(
    request: Request[Any, Any, Any],
    rec_id: RecId,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Response[Any]:
    org_id = current_org(tenant)
    form = await read_form(request, ["show"])
    deps = service.ApplyDeps(clock=clock, settings=settings, drivers=drivers_of(request))
    try:
        await service.apply(db, tenant, org_id, rec_id, deps)
    except ProblemError as problem:
        return await _refused(request, db, tenant, clock, problem, form.values["show"])
    wake_reconciler(request)
    return _back("applied", form.values["show"], rec_id)


@post("/insights/{rec_id:str}/dismiss", opt=_write("dismiss_recommendation"),
      name="portal:insight-dismiss")  # fmt: skip
async def dismiss_advice(
    request: Request[Any, Any, Any], rec_id: RecId, tenant: TenantScope, db: AsyncSession,
    clock: Clock,
) -> Response[Any]:  # fmt: skip
    org_id = current_org(tenant)
    form = await read_form(request, ["show", "reason"])
    try:
        await service.dismiss(db, tenant, org_id, rec_id, form.values["reason"][:500], clock.now())
    except ProblemError as problem:
        return await _refused(request, db, tenant, clock, problem, form.values["show"])
    return _back("dismissed", form.values["show"])


@post("/insights/{rec_id:str}/snooze", opt=_write("snooze_recommendation"),
      name="portal:insight-snooze")  # fmt: skip
async def snooze_advice(
    request: Request[Any, Any, Any], rec_id: RecId, tenant: TenantScope, db: AsyncSession,
    clock: Clock,
) -> Response[Any]:  # fmt: skip
    org_id = current_org(tenant)
    form = await read_form(request, ["show", "days"])
    days = int(form.values["days"]) if form.values["days"].isdigit() else 0
    if days not in SNOOZE_DAYS:
        return await dashboard(request, db, tenant, clock, show=form.values["show"],
                               failure="Choose how many days to snooze for from the list.",
                               status_code=400)  # fmt: skip
    try:
        await service.snooze(db, tenant, org_id, rec_id, days, clock.now())
    except ProblemError as problem:
        return await _refused(request, db, tenant, clock, problem, form.values["show"])
    return _back("snoozed", form.values["show"])


ROUTES: list[Any] = [analyse_now, apply_advice, dismiss_advice, snooze_advice]
