"""Monthly budgets of the current organization: spend against each, and for the billing
role a form to set one (alerts, hard stop, webhook, e-mail) and a delete button. A new
webhook's signing secret is shown once, on the page answering the form, like API keys."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from billing.budgets import service
from billing.budgets.schemas import BudgetRead, BudgetSet
from control_plane.clock import Clock
from control_plane.errors import NotFound, ProblemError
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.settings import Settings
from portal.forms import FormState, convert, discard, read_form
from portal.pages.billing.common import org_projects, page

CURRENCIES = ("CAD", "EUR", "SEK", "USD")
FIELDS = ("currency", "amount", "project_id", "thresholds", "hard_stop", "webhook_url", "email")
_HINTS = {
    "currency": "Choose one of the listed currencies.",
    "amount": "An amount above 0, at most 1,000,000,000, e.g. 2500 or 2500.50.",
    "thresholds": "Whole percentages from 1 to 1000, separated by commas, e.g. 50, 80, 100.",
    "webhook_url": "An http:// or https:// address, or leave it empty.",
    "email": "An e-mail address, or leave it empty.",
}
_NOTICES = {
    "saved": "The budget was saved. Spend is checked against it every few minutes.",
    "deleted": "The budget was deleted.",
    "gone": "That budget no longer exists (it may have been deleted already).",
}
Notice = Annotated[str | None, Parameter(max_length=20)]
BudgetId = Annotated[str | None, Parameter(max_length=40)]


@get("/billing/budgets", opt=tenant(Permission.BILLING_READ), name="portal:budgets")
async def budgets_page(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    done: Notice = None,
    edit: BudgetId = None,
) -> Template:
    return await _page(
        request, db, tenant, FormState(), notice=_NOTICES.get(done or "", ""), edit=edit
    )


def _parse(form: FormState) -> dict[str, Any]:
    """Form text as BudgetSet's fields; a threshold list that is not numbers is a field error."""
    data: dict[str, Any] = {k: v for k, v in form.values.items() if k != "thresholds"}
    data["hard_stop"] = form.values.get("hard_stop") in ("on", "true", "1")
    parts = [p.strip().rstrip("%") for p in form.values.get("thresholds", "").split(",")]
    if not any(parts):
        return data  # the schema's default: 50, 80, 100
    try:
        data["thresholds"] = [int(p) for p in parts if p]
    except ValueError:
        form.errors["thresholds"] = _HINTS["thresholds"]
    return data


@post("/billing/budgets", opt=tenant(Permission.BILLING_WRITE), name="portal:budget-set")
async def budget_set(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Response[Any]:
    """Create the budget of (project, currency), or change it."""
    org_id = tenant.resolve_org(None)
    form = await read_form(request, FIELDS)
    data = _parse(form)
    budget = None if form.errors else convert(form, BudgetSet, data, _HINTS)
    status = 400
    if budget is not None and not await _known_project(db, tenant, org_id, budget.project_id):
        form.errors["project_id"] = "Choose one of your projects, or the whole organization."
        budget = None
    if budget is not None:
        try:
            saved = await service.set_budget(
                db, tenant, org_id, budget, clock=clock, settings=settings
            )
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
            status = problem.status
        else:
            if saved.webhook_secret:
                return await _page(request, db, tenant, FormState(), created=saved)
            return Redirect(path="/billing/budgets?done=saved", status_code=HTTP_303_SEE_OTHER)
    form.message = form.message or "The budget was not saved; check the highlighted fields."
    return await _page(request, db, tenant, form, status_code=status)


@post("/billing/budgets/delete", opt=tenant(Permission.BILLING_WRITE), name="portal:budget-delete")
async def budget_delete(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession
) -> Redirect:
    org_id = tenant.resolve_org(None)
    form = await read_form(request, ["budget_id"])
    try:
        await service.delete_budget(db, tenant, org_id, form.values["budget_id"][:40])
    except NotFound:
        return Redirect(path="/billing/budgets?done=gone", status_code=HTTP_303_SEE_OTHER)
    return Redirect(path="/billing/budgets?done=deleted", status_code=HTTP_303_SEE_OTHER)


async def _known_project(
    db: AsyncSession, scope: TenantScope, org_id: str, project_id: str
) -> bool:
    """ "" (the whole organization) or a project of the organization."""
    return not project_id or project_id in {p.id for p in await org_projects(db, scope, org_id)}


def _values_of(budget: BudgetRead) -> dict[str, str]:
    return {
        "currency": budget.currency,
        "amount": f"{budget.amount:f}",
        "project_id": budget.project_id,
        "thresholds": ", ".join(str(t) for t in budget.thresholds),
        "hard_stop": "on" if budget.hard_stop else "",
        "webhook_url": budget.webhook_url,
        "email": budget.email,
    }


async def _page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    form: FormState,
    *,
    notice: str = "",
    edit: str | None = None,
    created: BudgetRead | None = None,
    status_code: int = 200,
) -> Template:
    org_id = scope.principal.default_org_id
    context: dict[str, Any] = {"page_title": "Budgets", "notice": notice, "created": created}
    if org_id is not None:
        scope.require(org_id, Permission.BILLING_READ)
        listed = await service.list_budgets(db, scope, org_id)
        projects = await org_projects(db, scope, org_id)
        editing = next((b for b in listed if b.id == edit), None) if edit else None
        if editing is not None:
            form = FormState(values=_values_of(editing))
        elif not form.values:
            form = FormState(values={"currency": "CAD", "thresholds": "50, 80, 100"})
        context.update(
            budgets=listed,
            editing=editing,
            project_names={p.id: p.name for p in projects},
            project_options=[(p.id, p.name) for p in projects],
            currency_options=[(c, c) for c in CURRENCIES],
            can_write=scope.allows(org_id, Permission.BILLING_WRITE),
            form=form,
        )
    return await page(
        request, db, scope, "billing/budgets.html", context, tab="budgets", status_code=status_code
    )


ROUTES = [budgets_page, budget_set, budget_delete]
