"""One tenancy: its progress through the lifecycle, access facts, allocations and timeline
(a live part the page polls while the tenancy moves), resize and release; what its machine
offers (power and console for a VM, the kubeconfig's status for Kubernetes) is shown here
and acted on in :mod:`portal.pages.tenancies.machine`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import Conflict, NotFound, ProblemError
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.settings import Settings
from control_plane.tenancies import machine_access, service
from control_plane.tenancies.drivers.base import TenancyKind
from control_plane.tenancies.lifecycle import FINAL, WORKING, TenancyState
from control_plane.tenancies.schemas import CredentialRead, TenancyRead, TenancyResize
from control_plane.tenancies.wiring import wake_reconciler
from portal.forms import FormState, convert, discard, read_form
from portal.pages.tenancies.common import (
    LABELS,
    STATE_LABELS,
    Done,
    TenancyId,
    drivers_of,
    org_of,
)
from portal.templating import collect, render

# The happy path a progress indicator shows; a failed tenancy ends in "failed" instead.
STEPS: tuple[TenancyState, ...] = (
    TenancyState.REQUESTED,
    TenancyState.PLACING,
    TenancyState.PROVISIONING,
    TenancyState.ACTIVE,
    TenancyState.RELEASING,
    TenancyState.CLEANING,
    TenancyState.RELEASED,
)
NOTICES = {
    "created": "Tenancy requested: residency, quota and placement checks passed. "
    "It is being provisioned; this page follows it.",
    "resized": "Resize requested: the new GPUs are reserved and being applied.",
    "releasing": "Release requested: workloads stop, the machines are cleaned, "
    "then the GPUs go back to the pool.",
    "started": "Started: the virtual machine is powered on.",
    "stopped": "Stopped: the virtual machine is powered off. Its GPUs stay reserved "
    "for this tenancy until you release it.",
    "rebooted": "Rebooted: the virtual machine restarted.",
    "rotated": "Kubeconfig rotated: every earlier one has stopped working. "
    "Show the new one (once) under Cluster access.",
}
# Facts a driver reports about the developer workspace (its address and the like).
WORKSPACE_FACT_PREFIXES = ("workspace", "jupyter")
_RESIZE_HINTS = {
    "gpus_per_node": "Give a whole number from 1 to 64.",
    "node_count": "Give a whole number from 1 to 64.",
}


@get("/tenancies/{tenancy_id:str}", opt=tenant(Permission.TENANCIES_READ), name="portal:tenancy")
async def tenancy_page(
    request: Request[Any, Any, Any],
    tenancy_id: TenancyId,
    tenant: TenantScope,
    db: AsyncSession,
    done: Done = None,
) -> Template:
    return await render_tenancy(request, db, tenant, tenancy_id, notice=NOTICES.get(done or "", ""))


@get(
    "/tenancies/{tenancy_id:str}/live",
    opt=tenant(Permission.TENANCIES_READ),
    name="portal:tenancy-live",
)
async def tenancy_live(
    request: Request[Any, Any, Any], tenancy_id: TenancyId, tenant: TenantScope, db: AsyncSession
) -> Template:
    """The changing part of the tenancy page (progress, actions, facts, timeline), polled
    by /static/js/tenancies.js while the tenancy is in a working state."""
    org_id = org_of(tenant)
    if org_id is None:
        raise NotFound(detail="No such tenancy.")
    context = await _detail_context(db, tenant, org_id, tenancy_id, FormState())
    context["csrf_token"] = tenant.principal.csrf_token
    return Template(
        template_name="tenancies/live.html",
        context=context,
        headers={"Cache-Control": "no-store"},
    )


async def render_tenancy(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    tenancy_id: str,
    *,
    notice: str = "",
    form: FormState | None = None,
    status_code: int = 200,
    shown: Mapping[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Template:
    """The tenancy page; ``shown`` carries what is shown on this answer only (a console
    link, a kubeconfig), never in a URL."""
    org_id = org_of(scope)
    if org_id is None:
        raise NotFound(detail="No such tenancy.")
    context = await _detail_context(db, scope, org_id, tenancy_id, form or FormState())
    context.update(page_title=f"Tenancy {context['tenancy'].name}", notice=notice)
    context.update({"console": None, "revealed": None, **(shown or {})})
    return await render(
        request, db, "tenancies/detail.html", context, active="tenancies",
        status_code=status_code, headers=headers,
    )  # fmt: skip


async def _detail_context(
    db: AsyncSession, scope: TenantScope, org_id: str, tenancy_id: str, form: FormState
) -> dict[str, Any]:
    tenancy = await service.get(db, scope, org_id, tenancy_id)
    events = await collect(lambda p: service.events(db, scope, org_id, tenancy_id, p), limit=200)
    can_write = scope.allows(org_id, Permission.TENANCIES_WRITE)
    state = TenancyState(tenancy.state)
    if not form.values:
        form.values = {
            "gpus_per_node": str(tenancy.gpus_per_node),
            "node_count": str(tenancy.node_count),
        }
    return {
        "tenancy": tenancy,
        "events": list(reversed(events)),  # newest first on the page
        "steps": progress_steps(tenancy),
        "working": is_working(tenancy),
        "can_write": can_write,
        "can_resize": can_write
        and state is TenancyState.ACTIVE
        and not tenancy.pending_resize
        and tenancy.kind is not TenancyKind.BARE_METAL,
        "can_release": can_write
        and state not in FINAL
        and state
        not in {
            TenancyState.RELEASING,
            TenancyState.CLEANING,
        },
        "form": form,
        **await machine_context(db, scope, org_id, tenancy, can_write=can_write),
        **LABELS,
    }


async def machine_context(
    db: AsyncSession, scope: TenantScope, org_id: str, tenancy: TenancyRead, *, can_write: bool
) -> dict[str, Any]:
    """What the Machine, Access and Workspace panels show: power and console for an active
    VM, the kubeconfig's status for an active Kubernetes namespace (buttons need write)."""
    active = TenancyState(tenancy.state) is TenancyState.ACTIVE
    credential: CredentialRead | None = None
    if active and tenancy.kind is TenancyKind.KUBERNETES:
        try:
            credential = await machine_access.credential_status(db, scope, org_id, tenancy.id)
        except Conflict:  # not issued yet: the panel says so
            credential = None
    return {
        "is_vm": active and tenancy.kind is TenancyKind.VM,
        "is_kubernetes": active and tenancy.kind is TenancyKind.KUBERNETES,
        "can_operate": can_write and active,
        "credential": credential,
        "workspace_facts": {
            key: value
            for key, value in sorted(tenancy.facts.items())
            if key.startswith(WORKSPACE_FACT_PREFIXES)
        },
    }


def is_working(tenancy: TenancyRead) -> bool:
    """Whether the tenancy is moving by itself (the page keeps following it)."""
    state = TenancyState(tenancy.state)
    early = {TenancyState.REQUESTED, TenancyState.PLACING}
    return state in WORKING or state in early or tenancy.pending_resize


def progress_steps(tenancy: TenancyRead) -> list[dict[str, str]]:
    """Each lifecycle step with ``done``, ``current``, ``todo`` or ``failed``."""
    state = TenancyState(tenancy.state)
    steps = []
    if state is TenancyState.FAILED:
        for step in STEPS[:-1]:
            steps.append({"state": step.value, "label": STATE_LABELS[step], "status": "done"})
        steps.append({"state": "failed", "label": "Failed", "status": "failed"})
        if tenancy.activated_at is None:  # it never got to active
            steps[STEPS.index(TenancyState.ACTIVE)]["status"] = "skipped"
        return steps
    at = STEPS.index(state)
    for index, step in enumerate(STEPS):
        status = "done" if index < at else "current" if index == at else "todo"
        if step is TenancyState.RELEASED and status == "current":
            status = "done"
        steps.append({"state": step.value, "label": STATE_LABELS[step], "status": status})
    return steps


@post(
    "/tenancies/{tenancy_id:str}/resize",
    opt=tenant(Permission.TENANCIES_WRITE),
    name="portal:tenancy-resize",
)
async def tenancy_resize(
    request: Request[Any, Any, Any],
    tenancy_id: TenancyId,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Response[Any]:
    org_id = org_of(tenant)
    if org_id is None:
        raise NotFound(detail="No such tenancy.")
    form = await read_form(request, ["gpus_per_node", "node_count"])
    values = {"gpus_per_node": form.values["gpus_per_node"]}
    if form.values["node_count"]:
        values["node_count"] = form.values["node_count"]
    data = convert(form, TenancyResize, values, _RESIZE_HINTS)
    status = 400
    if data is not None:
        try:
            await service.resize(
                db, tenant, org_id, tenancy_id, data, clock=clock, settings=settings,
                drivers=drivers_of(request),
            )  # fmt: skip
        except NotFound:
            raise
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
            status = problem.status
        else:
            wake_reconciler(request)
            return Redirect(
                path=f"/tenancies/{tenancy_id}?done=resized", status_code=HTTP_303_SEE_OTHER
            )
    form.message = form.message or "The tenancy was not resized; check the highlighted fields."
    return await render_tenancy(request, db, tenant, tenancy_id, form=form, status_code=status)


@post(
    "/tenancies/{tenancy_id:str}/release",
    opt=tenant(Permission.TENANCIES_WRITE),
    name="portal:tenancy-release",
)
async def tenancy_release(
    request: Request[Any, Any, Any],
    tenancy_id: TenancyId,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Redirect:
    org_id = org_of(tenant)
    if org_id is None:
        raise NotFound(detail="No such tenancy.")
    await service.release(db, tenant, org_id, tenancy_id, clock=clock, settings=settings)
    wake_reconciler(request)
    return Redirect(path=f"/tenancies/{tenancy_id}?done=releasing", status_code=HTTP_303_SEE_OTHER)


ROUTES: list[Any] = [
    tenancy_page,
    tenancy_live,
    tenancy_resize,
    tenancy_release,
]
