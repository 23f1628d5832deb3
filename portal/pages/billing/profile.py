"""The billing profile: the legal name, place and tax id invoices are addressed to (and
taxed by), and where invoices are sent."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from billing.prices import service
from billing.prices.schemas import ProfileRead, ProfileSet
from control_plane.clock import Clock
from control_plane.errors import ProblemError
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from portal.forms import FormState, convert, discard, read_form
from portal.pages.billing.common import page

FIELDS = ("legal_name", "country", "subdivision", "tax_id", "email")
_HINTS = {
    "legal_name": "The name on your invoices (at most 200 characters).",
    "country": "The two-letter country code, e.g. CA, SE, DE.",
    "subdivision": "The province or state code, e.g. QC or ON, or leave it empty.",
    "tax_id": "At most 40 characters, or leave it empty.",
    "email": "An e-mail address, e.g. ap@example.com.",
}
Notice = Annotated[str | None, Parameter(max_length=20)]


@get("/billing/profile", opt=tenant(Permission.BILLING_READ), name="portal:billing-profile")
async def profile_page(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession, done: Notice = None
) -> Template:
    notice = "The billing profile was saved; the next invoice uses it." if done == "saved" else ""
    return await _page(request, db, tenant, None, notice=notice)


@post("/billing/profile", opt=tenant(Permission.BILLING_WRITE), name="portal:billing-profile-set")
async def profile_set(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession, clock: Clock
) -> Response[Any]:
    org_id = tenant.resolve_org(None)
    form = await read_form(request, FIELDS)
    for name in ("country", "subdivision"):
        form.values[name] = form.values[name].upper()
    data = convert(form, ProfileSet, dict(form.values), _HINTS)
    status = 400
    if data is not None:
        try:
            await service.set_profile(db, tenant, org_id, data, clock.now())
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
            status = problem.status
        else:
            return Redirect(path="/billing/profile?done=saved", status_code=HTTP_303_SEE_OTHER)
    form.message = form.message or "The profile was not saved; check the highlighted fields."
    return await _page(request, db, tenant, form, status_code=status)


def _values_of(profile: ProfileRead | None) -> dict[str, str]:
    if profile is None:
        return {}
    return {name: str(getattr(profile, name)) for name in FIELDS}


async def _page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    form: FormState | None,
    *,
    notice: str = "",
    status_code: int = 200,
) -> Template:
    org_id = scope.principal.default_org_id
    context: dict[str, Any] = {"page_title": "Billing profile", "notice": notice}
    if org_id is not None:
        scope.require(org_id, Permission.BILLING_READ)
        profile = await service.get_profile(db, scope, org_id)
        context.update(
            profile=profile,
            form=form or FormState(values=_values_of(profile)),
            can_write=scope.allows(org_id, Permission.BILLING_WRITE),
        )
    return await page(
        request, db, scope, "billing/profile.html", context, tab="profile", status_code=status_code
    )


ROUTES = [profile_page, profile_set]
