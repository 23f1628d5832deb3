"""Keys & secrets of the current organization: data-key versions, rotation, and secrets whose
values go in through a form and never come back out."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import NotFound, ProblemError
from control_plane.http.pagination import PageRequest
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.settings import Settings
from control_plane.sovereignty.keys import service
from control_plane.sovereignty.keys import tenant as tenant_keys
from control_plane.sovereignty.keys.models import SecretKind
from control_plane.sovereignty.keys.schemas import SecretCreate
from portal.forms import FormState, convert, discard, read_form
from portal.templating import collect, render

KIND_LABELS: dict[str, str] = {
    SecretKind.BMC_CREDENTIALS: "BMC credentials",
    SecretKind.KUBECONFIG: "Kubeconfig",
    SecretKind.SLURM_TOKEN: "Slurm token",
    SecretKind.STRIPE_KEY: "Stripe key",
    SecretKind.OIDC_CLIENT_SECRET: "OIDC client secret",
    SecretKind.MODEL_REPOSITORY_CREDENTIALS: "Model repository credentials",
    SecretKind.OTHER: "Other",
}
_HINTS = {
    "name": "Use letters, digits and . _ / - (at most 200 characters).",
    "kind": "Choose one of the listed kinds.",
    "value": "Paste the value (at most 64 KiB).",
    "description": "Use at most 500 characters.",
}
_NOTICES = {
    "rotated": "A new data key version was made: new values are encrypted with it; "
    "existing ones stay readable.",
    "saved": "The secret was saved. Its value is encrypted and will not be shown again.",
    "deleted": "The secret was deleted.",
    "gone": "That secret no longer exists (it may have been deleted already).",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
Notice = Annotated[str | None, Parameter(max_length=20)]
Shown = Annotated[str | None, Parameter(max_length=200)]


@get("/keys", opt=tenant(Permission.SECRETS_READ), name="portal:keys")
async def keys_page(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    page: PageRequest,
    done: Notice = None,
    name: Shown = None,
    replace: Annotated[str | None, Parameter(max_length=40)] = None,
) -> Template:
    notice = _NOTICES.get(done or "", "")
    if done == "saved" and name and _NAME.match(name):
        notice = f"The secret {name} was saved. Its value is encrypted and will not be shown again."
    return await _page(request, db, tenant, page, FormState(), notice=notice, replace=replace)


@post("/keys/rotate", opt=tenant(Permission.SECRETS_WRITE), name="portal:keys-rotate")
async def keys_rotate(
    tenant: TenantScope, db: AsyncSession, clock: Clock, settings: Settings
) -> Redirect:
    org_id = tenant.resolve_org(None)
    await tenant_keys.rotate_data_key(db, tenant, org_id, clock=clock, settings=settings)
    return Redirect(path="/keys?done=rotated", status_code=HTTP_303_SEE_OTHER)


@post("/keys/secrets", opt=tenant(Permission.SECRETS_WRITE), name="portal:secret-save")
async def secret_save(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    page: PageRequest,
) -> Response[Any]:
    """Store a secret, or replace the value of the one with that name."""
    org_id = tenant.resolve_org(None)
    form = await read_form(request, ["name", "kind", "value", "description"])
    data = convert(form, SecretCreate, dict(form.values), _HINTS)
    form.values.pop("value", None)  # a value typed is never sent back to the browser
    status = 400
    if data is not None:
        try:
            await service.put(
                db,
                org_id=org_id,
                name=data.name,
                kind=data.kind,
                value=service.decode_value(data.value, data.value_encoding),
                actor=service.Actor.of(tenant.principal),
                clock=clock,
                settings=settings,
                description=data.description or None,
            )
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
            status = problem.status
        else:
            return Redirect(
                path="/keys",
                query_params={"done": "saved", "name": data.name},
                status_code=HTTP_303_SEE_OTHER,
            )
    form.message = form.message or "The secret was not saved; check the highlighted fields."
    return await _page(request, db, tenant, page, form, status_code=status)


@post("/keys/secrets/delete", opt=tenant(Permission.SECRETS_WRITE), name="portal:secret-delete")
async def secret_delete(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession
) -> Redirect:
    org_id = tenant.resolve_org(None)
    form = await read_form(request, ["secret_id"])
    secret_id = form.values["secret_id"][:40]
    try:
        await tenant_keys.delete_secret(db, tenant, org_id, secret_id)
    except NotFound:
        return Redirect(path="/keys?done=gone", status_code=HTTP_303_SEE_OTHER)
    return Redirect(path="/keys?done=deleted", status_code=HTTP_303_SEE_OTHER)


async def _page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    page: PageRequest,
    form: FormState,
    *,
    notice: str = "",
    replace: str | None = None,
    status_code: int = 200,
) -> Template:
    org_id = scope.principal.default_org_id
    data_keys, secrets, replacing = None, None, None
    if org_id is not None:
        scope.require(org_id, Permission.SECRETS_READ)
        data_keys = await collect(lambda p: tenant_keys.list_data_keys(db, scope, org_id, p))
        secrets = await tenant_keys.list_secrets(db, scope, org_id, page)
        if replace:
            try:
                replacing = await tenant_keys.get_secret(db, scope, org_id, replace)
            except NotFound:
                notice = _NOTICES["gone"]
    context = {
        "page_title": "Keys & secrets",
        "data_keys": data_keys,
        "secrets": secrets,
        "can_write": bool(org_id and scope.allows(org_id, Permission.SECRETS_WRITE)),
        "kind_choices": list(KIND_LABELS.items()),
        "kind_labels": KIND_LABELS,
        "form": form,
        "notice": notice,
        "replacing": replacing,
    }
    return await render(
        request, db, "keys/index.html", context, active="keys", status_code=status_code
    )


ROUTES = [keys_page, keys_rotate, secret_save, secret_delete]
