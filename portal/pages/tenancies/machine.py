"""Reaching a running tenancy from its page: start, stop and reboot a VM and open its
console; show a Kubernetes namespace's kubeconfig once, and rotate it.

Power and rotation redirect back with a notice (Post/Redirect/Get). The console link and
the kubeconfig are answered on the page itself, never in a URL, and kept out of every
cache; a refusal is the page's usual error notice with the service's words.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from litestar import Request, Response, post
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import NotFound, ProblemError
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.settings import Settings
from control_plane.tenancies import machine_access, service
from control_plane.tenancies.drivers.base import PowerAction
from portal.forms import FormState, discard, read_form
from portal.pages.tenancies.common import TenancyId, drivers_of, org_of
from portal.pages.tenancies.detail import render_tenancy

T = TypeVar("T")
DONE = {
    PowerAction.START: "started",
    PowerAction.STOP: "stopped",
    PowerAction.REBOOT: "rebooted",
}
# The console link and the kubeconfig are on this answer only.
NO_STORE = {"Cache-Control": "no-store"}


class _Refused(Exception):
    """A service refusal, already undone, to show on the page."""

    def __init__(self, problem: ProblemError) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def _org_id(scope: TenantScope) -> str:
    org_id = org_of(scope)
    if org_id is None:
        raise NotFound(detail="No such tenancy.")
    return org_id


async def _attempt(db: AsyncSession, call: Awaitable[T]) -> T:
    """The service's answer; a refusal other than a missing tenancy is undone and raised
    as :class:`_Refused` for the page to show."""
    try:
        return await call
    except NotFound:
        raise
    except ProblemError as problem:
        await discard(db, problem)
        raise _Refused(problem) from problem


async def _refused(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    tenancy_id: str,
    refused: _Refused,
) -> Template:
    form = FormState(message=refused.problem.detail)
    return await render_tenancy(
        request, db, scope, tenancy_id, form=form, status_code=refused.problem.status
    )


def _back(tenancy_id: str, done: str) -> Redirect:
    return Redirect(path=f"/tenancies/{tenancy_id}?done={done}", status_code=HTTP_303_SEE_OTHER)


@post(
    "/tenancies/{tenancy_id:str}/power",
    opt=tenant(Permission.TENANCIES_WRITE),
    name="portal:tenancy-power",
)
async def tenancy_power(
    request: Request[Any, Any, Any],
    tenancy_id: TenancyId,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
) -> Response[Any]:
    org_id = _org_id(tenant)
    form = await read_form(request, ["action"])
    if form.values["action"] not in {a.value for a in PowerAction}:
        form.message = "Choose start, stop or reboot."
        return await render_tenancy(request, db, tenant, tenancy_id, form=form, status_code=400)
    action = PowerAction(form.values["action"])
    try:
        await _attempt(db, machine_access.power(
            db, tenant, org_id, tenancy_id, action, drivers=drivers_of(request),
            actor=service.actor_from(tenant), clock=clock,
        ))  # fmt: skip
    except _Refused as refused:
        return await _refused(request, db, tenant, tenancy_id, refused)
    return _back(tenancy_id, DONE[action])


@post(
    "/tenancies/{tenancy_id:str}/console",
    opt=tenant(Permission.TENANCIES_WRITE),
    name="portal:tenancy-console",
)
async def tenancy_console(
    request: Request[Any, Any, Any], tenancy_id: TenancyId, tenant: TenantScope, db: AsyncSession
) -> Template:
    """A short-lived console link, on this answer only."""
    org_id = _org_id(tenant)
    try:
        link = await _attempt(
            db, machine_access.console(db, tenant, org_id, tenancy_id, drivers=drivers_of(request))
        )
    except _Refused as refused:
        return await _refused(request, db, tenant, tenancy_id, refused)
    return await render_tenancy(
        request, db, tenant, tenancy_id, shown={"console": link}, headers=NO_STORE
    )


@post(
    "/tenancies/{tenancy_id:str}/credential/reveal",
    opt=tenant(Permission.TENANCIES_WRITE),
    name="portal:tenancy-credential-reveal",
)
async def credential_reveal(
    request: Request[Any, Any, Any],
    tenancy_id: TenancyId,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Template:
    """The kubeconfig, once: it is not kept afterwards (a second try says to rotate)."""
    org_id = _org_id(tenant)
    try:
        revealed = await _attempt(db, machine_access.reveal_credential(
            db, tenant, org_id, tenancy_id, actor=service.actor_from(tenant), clock=clock,
            settings=settings,
        ))  # fmt: skip
    except _Refused as refused:
        return await _refused(request, db, tenant, tenancy_id, refused)
    await db.flush()  # the timeline on this answer shows the reveal it just recorded
    return await render_tenancy(
        request, db, tenant, tenancy_id, shown={"revealed": revealed}, headers=NO_STORE
    )


@post(
    "/tenancies/{tenancy_id:str}/credential/rotate",
    opt=tenant(Permission.TENANCIES_WRITE),
    name="portal:tenancy-credential-rotate",
)
async def credential_rotate(
    request: Request[Any, Any, Any],
    tenancy_id: TenancyId,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Response[Any]:
    """Invalidate every earlier kubeconfig and issue a new one, to show once."""
    org_id = _org_id(tenant)
    try:
        await _attempt(db, machine_access.rotate_credential(
            db, tenant, org_id, tenancy_id, drivers=drivers_of(request),
            actor=service.actor_from(tenant), clock=clock, settings=settings,
        ))  # fmt: skip
    except _Refused as refused:
        return await _refused(request, db, tenant, tenancy_id, refused)
    return _back(tenancy_id, "rotated")


ROUTES: list[Any] = [tenancy_power, tenancy_console, credential_reveal, credential_rotate]
