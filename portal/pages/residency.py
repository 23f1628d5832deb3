"""Residency: the policy editor (owners, admins) and the residency report (auditors too)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import ProblemError
from control_plane.http.pagination import PageRequest
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.inventory import service as inventory
from control_plane.settings import Settings
from control_plane.sovereignty.residency import report, service
from control_plane.sovereignty.residency.errors import PolicyStrandsResources
from control_plane.sovereignty.residency.schemas import PolicyChange, PolicyPreview, PolicyRead
from control_plane.sovereignty.residency.templates import TEMPLATES
from portal.forms import FormState, convert, discard
from portal.templating import collect, render

VERSIONS_SHOWN = 20
_LIST_FIELDS = ("allowed_jurisdictions", "allowed_groups", "operator_jurisdictions")
_FLAGS = ("unrestricted", "keys_in_region", "cross_border_export")
_HINTS = {
    "name": "Use at most 100 printable characters.",
    "classification": "Use at most 100 printable characters.",
    "allowed_jurisdictions": "Two-letter country codes (ISO 3166), separated by commas.",
    "allowed_groups": "Sovereignty groups such as EU, separated by commas.",
    "operator_jurisdictions": "Two-letter country codes (ISO 3166), separated by commas.",
    "allowed_regions": "Choose regions from the list.",
    "template": "Choose one of the listed templates.",
}


@get("/residency", opt=tenant(Permission.POLICY_READ), name="portal:residency")
async def residency_policy(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    saved: Annotated[int | None, Parameter(ge=0, le=10**9)] = None,
) -> Template:
    org_id = tenant.principal.default_org_id
    if org_id is None:
        return await _no_org(request, db, "Residency policy")
    current = await service.get_policy(db, tenant, org_id)
    notice = f"Version {saved} of the residency policy is in force." if saved else ""
    return await _policy_page(request, db, tenant, org_id, current, _form_of(current), notice)


@post("/residency", opt=tenant(Permission.POLICY_WRITE), name="portal:residency-change")
async def residency_change(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession, clock: Clock
) -> Template | Redirect:
    """Preview (writes nothing) or save a change, from the same form."""
    org_id = tenant.resolve_org(None)
    form, change = await _read_change(request)
    current = await service.get_policy(db, tenant, org_id)
    if change is None:
        form.message = form.message or "The policy was not changed; check the highlighted fields."
        return await _policy_page(request, db, tenant, org_id, current, form, status_code=400)
    sources = request.app.state.residency_sources
    preview: PolicyPreview | None = None
    try:
        if form.values.get("action") == "preview":
            preview = await service.preview(db, tenant, org_id, change, sources)
        else:
            saved = await service.set_policy(db, clock, tenant, org_id, change, sources)
            return Redirect(
                path=f"/residency?saved={saved.version}", status_code=HTTP_303_SEE_OTHER
            )
    except PolicyStrandsResources as problem:
        await discard(db, problem)
        preview = await service.preview(db, tenant, org_id, change, sources)
        form.message = problem.detail
        form.values["needs_force"] = "1"
        return await _policy_page(
            request, db, tenant, org_id, current, form, preview=preview, status_code=409
        )
    except ProblemError as problem:
        await discard(db, problem)
        form.add_problem(problem)
        return await _policy_page(
            request, db, tenant, org_id, current, form, status_code=problem.status
        )
    if preview.outside:
        form.values["needs_force"] = "1"
    return await _policy_page(request, db, tenant, org_id, current, form, preview=preview)


async def _read_change(request: Request[Any, Any, Any]) -> tuple[FormState, PolicyChange | None]:
    """The form as typed, and the change it asks for (None when invalid).

    A template replaces every clause; "current clauses" sends the clauses as edited.
    """
    raw = await request.form()
    values = {
        name: (raw.get(name) or "").strip()
        for name in ("template", "name", "classification", "action", *_LIST_FIELDS)
        if isinstance(raw.get(name) or "", str)
    }
    regions = [r for r in raw.getall("allowed_regions", []) if isinstance(r, str) and r]
    for flag in (*_FLAGS, "force"):
        values[flag] = "1" if raw.get(flag) == "1" else ""
    values["allowed_regions"] = ",".join(regions)
    form = FormState(values=values)
    data: dict[str, Any] = {"force": bool(values["force"])}
    if values.get("template"):
        data["template"] = values["template"]
    else:
        data.update(
            name=values.get("name", ""),
            classification=values.get("classification", ""),
            allowed_regions=regions,
            **{flag: bool(values[flag]) for flag in _FLAGS},
            **{name: _split(values.get(name, "")) for name in _LIST_FIELDS},
        )
    return form, convert(form, PolicyChange, data, _HINTS)


def _split(text: str) -> list[str]:
    return [part.strip().upper() for part in text.replace(";", ",").split(",") if part.strip()]


def _form_of(current: PolicyRead) -> FormState:
    """The editor pre-filled with the current clauses."""
    policy = current.policy
    values = {
        "template": "",
        "name": policy.name,
        "classification": policy.classification,
        "allowed_regions": ",".join(policy.allowed_regions),
        **{name: ", ".join(getattr(policy, name)) for name in _LIST_FIELDS},
        **{flag: "1" if getattr(policy, flag) else "" for flag in _FLAGS},
    }
    return FormState(values=values)


async def _policy_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    current: PolicyRead,
    form: FormState,
    notice: str = "",
    preview: PolicyPreview | None = None,
    status_code: int = 200,
) -> Template:
    versions = await service.list_versions(
        db, scope, org_id, PageRequest(limit=VERSIONS_SHOWN, after=None)
    )
    regions = await collect(lambda page: inventory.list_regions(db, page))
    context = {
        "page_title": "Residency policy",
        "current": current,
        "versions": versions.items,
        "more_versions": versions.next_cursor is not None,
        "can_write": scope.allows(org_id, Permission.POLICY_WRITE),
        "templates": list(TEMPLATES.values()),
        "template_choices": [(t.slug, t.policy.name) for t in TEMPLATES.values()],
        "regions": regions,
        "chosen_regions": set(form.values.get("allowed_regions", "").split(",")),
        "form": form,
        "preview": preview,
        "notice": notice,
    }
    return await render(
        request, db, "residency/policy.html", context, active="residency", status_code=status_code
    )


@get("/residency/report", opt=tenant(Permission.POLICY_READ), name="portal:residency-report")
async def residency_report(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Template:
    """The report as a page (printable), with the signed downloads beside it."""
    org_id = tenant.principal.default_org_id
    if org_id is None:
        return await _no_org(request, db, "Residency report")
    document = await report.build_report(
        db, tenant, org_id, request.app.state.residency_sources, clock, settings.region
    )
    download = f"/api/v1/orgs/{org_id}/residency-report"
    context = {
        "page_title": "Residency report",
        "report": document,
        "policy": document.policy,
        # The printable HTML opens in the browser; CSV and JSON are saved as files.
        "downloads": [(f"{download}?format={f}", label, f != "html") for f, label in _DOWNLOADS],
    }
    return await render(request, db, "residency/report.html", context, active="residency")


async def _no_org(request: Request[Any, Any, Any], db: AsyncSession, title: str) -> Template:
    """Provider staff and people without an organization have no policy to show."""
    context = {"page_title": title}
    return await render(request, db, "residency/no_org.html", context, active="residency")


_DOWNLOADS = (("csv", "CSV"), ("json", "JSON"), ("html", "Printable HTML"))


ROUTES = [residency_policy, residency_change, residency_report]
