"""One endpoint: its state, replicas, versions (with approvals), the forms that change it,
the timeline (a live part the page polls while it deploys), the gateway's live metrics,
tokens per hour, and how to call it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from billing.costs.schemas import EndpointCost
from billing.costs.service import endpoint_costs
from control_plane.clock import Clock
from control_plane.endpoints import service
from control_plane.endpoints.schemas import Approval, EndpointRead, EndpointState
from control_plane.errors import NotFound
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.settings import Settings
from portal.forms import FormState
from portal.pages.endpoints.common import (
    LABELS,
    Done,
    EndpointName,
    live_stats,
    org_of,
    tokens_chart,
)
from portal.pages.endpoints.snippets import snippets
from portal.templating import collect, render

NOTICES = {
    "created": "Endpoint created: residency, governance and placement checks passed. "
    "Its replicas are starting; this page follows them.",
    "scaled": "Replica range saved: replicas start or stop to match it.",
    "split": "Traffic split saved.",
    "approved": "Version approved: it now takes its share of production traffic.",
    "rejected": "Version rejected: it will not serve.",
}
MOVING = {EndpointState.DEPLOYING, EndpointState.DEGRADED, EndpointState.DELETING}


@get("/endpoints/{name:str}", opt=tenant(Permission.ENDPOINTS_READ), name="portal:endpoint")
async def endpoint_page(
    request: Request[Any, Any, Any],
    name: EndpointName,
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    done: Done = None,
) -> Template:
    return await show(
        request, db, tenant, settings, clock, name, notice=NOTICES.get(done or "", "")
    )


@get(
    "/endpoints/{name:str}/live",
    opt=tenant(Permission.ENDPOINTS_READ),
    name="portal:endpoint-live",
)
async def endpoint_live(
    request: Request[Any, Any, Any],
    name: EndpointName,
    tenant: TenantScope,
    db: AsyncSession,
    settings: Settings,
) -> Template:
    """The changing part of the endpoint page (state, replicas, timeline), polled by
    /static/js/endpoints.js while the endpoint is deploying."""
    org_id = org_of(tenant)
    if org_id is None:
        raise NotFound(detail="No such endpoint.")
    context = await live_context(db, tenant, org_id, name, settings)
    context["csrf_token"] = tenant.principal.csrf_token
    return Template(
        template_name="endpoints/live.html", context=context, headers={"Cache-Control": "no-store"}
    )


async def live_context(
    db: AsyncSession, scope: TenantScope, org_id: str, name: str, settings: Settings
) -> dict[str, Any]:
    endpoint = await service.get(db, scope, org_id, name, settings)
    events = await collect(lambda p: service.events(db, scope, org_id, endpoint.id, p), limit=200)
    return {
        "endpoint": endpoint,
        "events": list(reversed(events)),  # newest first on the page
        "working": is_working(endpoint),
        **LABELS,
    }


def is_working(endpoint: EndpointRead) -> bool:
    """Whether the endpoint is moving by itself (the page keeps following it)."""
    if endpoint.state in MOVING:
        return True
    return endpoint.state == EndpointState.READY and (
        endpoint.ready_replicas != endpoint.desired_replicas
    )


async def show(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    settings: Settings,
    clock: Clock,
    name: str,
    *,
    notice: str = "",
    form: FormState | None = None,
    form_id: str = "",
    status_code: int = 200,
) -> Template:
    """The endpoint page; ``form`` (of the form ``form_id``) when one is shown again."""
    org_id = org_of(scope)
    if org_id is None:
        raise NotFound(detail="No such endpoint.")
    context = await live_context(db, scope, org_id, name, settings)
    endpoint: EndpointRead = context["endpoint"]
    # A rejected version never serves again; the others can share the traffic.
    live = [v for v in endpoint.versions if v.approval != Approval.REJECTED]
    context.update(
        page_title=f"Endpoint {endpoint.name}",
        notice=notice,
        form=form or FormState(),
        form_id=form_id,
        scale_form=form if form_id == "scale" and form else scale_values(endpoint),
        split_form=form if form_id == "split" and form else split_values(endpoint),
        live_versions=live,
        can_write=scope.allows(org_id, Permission.ENDPOINTS_WRITE),
        can_validate=scope.allows(org_id, Permission.MODELS_VALIDATE),
        stats=live_stats(request, endpoint.id),
        chart=await tokens_chart(db, org_id, clock.now(), endpoint.id),
        snippets=snippets(endpoint),
        show_cost=scope.allows(org_id, Permission.USAGE_READ),
        cost=await _cost(db, scope, org_id, endpoint.id, clock),
    )
    return await render(
        request, db, "endpoints/detail.html", context, active="endpoints", status_code=status_code
    )


async def _cost(
    db: AsyncSession, scope: TenantScope, org_id: str, endpoint_id: str, clock: Clock
) -> EndpointCost | None:
    """The last 30 days on both ways of buying, for readers of usage."""
    if not scope.allows(org_id, Permission.USAGE_READ):
        return None
    now = clock.now()
    found = await endpoint_costs(db, scope, org_id, now - timedelta(days=30), now, endpoint_id)
    return found[0] if found else None


def scale_values(endpoint: EndpointRead) -> FormState:
    return FormState(
        values={
            "min_replicas": str(endpoint.min_replicas),
            "max_replicas": str(endpoint.max_replicas),
            "replicas": "",
        }
    )


def split_values(endpoint: EndpointRead) -> FormState:
    return FormState(
        values={f"percent_{v.number}": str(v.traffic_percent) for v in endpoint.versions}
    )


ROUTES: list[Any] = [endpoint_page, endpoint_live]
