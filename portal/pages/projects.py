"""Projects of the current organization and their API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import ProblemError
from control_plane.http.pagination import PageRequest
from control_plane.identity import api_keys, projects
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import ROLE_RANK, Permission, TenantRole
from control_plane.identity.schemas import ApiKeyCreate, ApiKeyRead, ProjectCreate
from portal.forms import FormState, convert, discard, read_form
from portal.templating import render

ResourceId = Annotated[str, Parameter(max_length=40)]
EXPIRY_CHOICES = (7, 30, 90, 365)
DEFAULT_EXPIRY = 90
_PROJECT_HINTS = {
    "slug": "Use lower-case letters, digits and inner hyphens (at most 63 characters).",
    "name": "Use at most 200 printable characters.",
    "description": "Use at most 2000 characters.",
}
_KEY_HINTS = {
    "name": "Use at most 200 printable characters.",
    "role": "Choose one of the listed roles.",
    "expires_in_days": "Choose one of the listed lifetimes.",
    "requests_per_second": "A number above 0, at most 100,000, or empty for the default.",
    "tokens_per_minute": "A whole number from 1 to 1,000,000,000, or empty for the default.",
}


@get("/projects", opt=tenant(Permission.PROJECTS_READ), name="portal:projects")
async def project_list(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession, page: PageRequest
) -> Template:
    return await _projects_page(request, db, tenant, page, FormState())


@post("/projects", opt=tenant(Permission.PROJECTS_WRITE), name="portal:project-create")
async def project_create(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    page: PageRequest,
) -> Response[Any]:
    org_id = tenant.resolve_org(None)
    form = await read_form(request, ["name", "slug", "description"])
    data = convert(form, ProjectCreate, {**form.values, "org_id": org_id}, _PROJECT_HINTS)
    status = 400
    if data is not None:
        try:
            created = await projects.create_project(db, clock, tenant, data)
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
            status = problem.status
        else:
            return Redirect(path=f"/projects/{created.id}", status_code=HTTP_303_SEE_OTHER)
    form.message = form.message or "The project was not created; check the highlighted fields."
    return await _projects_page(request, db, tenant, page, form, status_code=status)


async def _projects_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    page: PageRequest,
    form: FormState,
    status_code: int = 200,
) -> Template:
    org_id = scope.principal.default_org_id
    listing = None
    if org_id and scope.allows(org_id, Permission.PROJECTS_READ):
        listing = await projects.list_projects(db, scope, org_id, page)
    context = {
        "page_title": "Projects",
        "listing": listing,
        "can_create": bool(org_id and scope.allows(org_id, Permission.PROJECTS_WRITE)),
        "form": form,
    }
    return await render(
        request, db, "projects/list.html", context, active="projects", status_code=status_code
    )


@get("/projects/{project_id:str}", opt=tenant(Permission.PROJECTS_READ), name="portal:project")
async def project_detail(
    request: Request[Any, Any, Any],
    project_id: ResourceId,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    page: PageRequest,
    revoked: Annotated[str | None, Parameter(max_length=40)] = None,
) -> Template:
    notice = f"API key {revoked} was revoked; it stops working within seconds." if revoked else ""
    return await _project_page(request, db, clock, tenant, project_id, page, FormState(), notice)


@post(
    "/projects/{project_id:str}/api-keys",
    opt=tenant(Permission.API_KEYS_WRITE),
    name="portal:api-key-create",
)
async def api_key_create(
    request: Request[Any, Any, Any],
    project_id: ResourceId,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    page: PageRequest,
) -> Template:
    form = await read_form(
        request, ["name", "role", "expires_in_days", "requests_per_second", "tokens_per_minute"]
    )
    values: dict[str, Any] = {
        "name": form.values["name"],
        "role": form.values["role"] or None,
        "expires_in_days": form.values["expires_in_days"] or DEFAULT_EXPIRY,
        "requests_per_second": form.values["requests_per_second"] or None,
        "tokens_per_minute": form.values["tokens_per_minute"] or None,
    }
    data = convert(form, ApiKeyCreate, values, _KEY_HINTS)
    status = 400
    if data is not None:
        try:
            created = await api_keys.create_api_key(db, clock, tenant, project_id, data)
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
            status = problem.status
        else:
            project = projects.project_read(await projects.visible_project(db, tenant, project_id))
            context = {"page_title": "API key created", "created": created, "project": project}
            return await render(
                request,
                db,
                "projects/key_created.html",
                context,
                active="projects",
                status_code=201,
                # The secret is on this page only: keep it out of every cache.
                headers={"Cache-Control": "no-store"},
            )
    form.message = form.message or "The key was not created; check the highlighted fields."
    return await _project_page(
        request, db, clock, tenant, project_id, page, form, status_code=status
    )


async def _project_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    scope: TenantScope,
    project_id: str,
    page: PageRequest,
    form: FormState,
    notice: str = "",
    status_code: int = 200,
) -> Template:
    project = projects.project_read(await projects.visible_project(db, scope, project_id))
    keys = None
    if scope.allows(project.org_id, Permission.API_KEYS_READ):
        keys = await api_keys.list_api_keys(db, scope, project_id, page)
    can_write = scope.allows(project.org_id, Permission.API_KEYS_WRITE)
    mine = scope.role_in(project.org_id)
    context = {
        "page_title": project.name,
        "project": project,
        "keys": keys,
        "key_status": {k.id: _key_status(k, clock.now()) for k in keys.items} if keys else {},
        "can_write_keys": can_write,
        "role_choices": [(str(r), str(r).capitalize()) for r in _grantable_roles(mine)]
        if mine
        else [],
        "default_role": str(_default_role(mine)) if mine else "",
        "expiry_choices": [(str(d), f"{d} days") for d in EXPIRY_CHOICES],
        "default_expiry": DEFAULT_EXPIRY,
        "form": form,
        "notice": notice,
    }
    return await render(
        request, db, "projects/detail.html", context, active="projects", status_code=status_code
    )


def _key_status(key: ApiKeyRead, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def _grantable_roles(mine: TenantRole) -> list[TenantRole]:
    """The roles a key may carry: the creator's own, or one of a lower rank."""
    return [r for r in TenantRole if r == mine or ROLE_RANK[r] < ROLE_RANK[mine]]


def _default_role(mine: TenantRole) -> TenantRole:
    """Least privilege that still does work: member when grantable, else the creator's role."""
    return TenantRole.MEMBER if TenantRole.MEMBER in _grantable_roles(mine) else mine


@post(
    "/api-keys/{key_id:str}/revoke",
    opt=tenant(Permission.API_KEYS_WRITE),
    name="portal:api-key-revoke",
)
async def api_key_revoke(
    request: Request[Any, Any, Any],
    key_id: ResourceId,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
) -> Redirect:
    key = await api_keys.revoke_api_key(db, clock, tenant, key_id)
    request.app.state.authenticator.forget_api_key(key.prefix)
    return Redirect(
        path=f"/projects/{key.project_id}?revoked={key.prefix}", status_code=HTTP_303_SEE_OTHER
    )


ROUTES = [project_list, project_create, project_detail, api_key_create, api_key_revoke]
