"""The endpoints list: the summary, tokens per hour over the last day, the endpoints with
their state, replicas and serving versions, and the model governance switch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.endpoints import governance, service
from control_plane.endpoints.schemas import EndpointRead, EndpointState
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.settings import Settings
from portal.pages.endpoints.common import LABELS, Done, org_of, tokens_chart
from portal.templating import collect, render

NOTICES = {
    "governed": "Model governance is on: new versions serve production traffic only once "
    "a validator approves them.",
    "ungoverned": "Model governance is off: new versions serve as soon as they are loaded.",
    "deleted": "Endpoint deleted: its replicas are being released.",
}


@get("/endpoints", opt=tenant(Permission.ENDPOINTS_READ), name="portal:endpoints")
async def endpoints_page(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    done: Done = None,
) -> Template:
    org_id = org_of(tenant)
    context: dict[str, Any] = {
        "page_title": "Endpoints",
        "has_org": org_id is not None,
        "endpoints": [],
        "summary": None,
        "chart": None,
        "governance": None,
        "can_write": False,
        "can_validate": False,
        "notice": NOTICES.get(done or "", ""),
        **LABELS,
    }
    if org_id is not None:
        tenant.require(org_id)
        everything = await collect(
            lambda page: service.list_endpoints(db, tenant, org_id, page, settings)
        )
        context.update(
            endpoints=everything,
            summary=summary(everything),
            chart=await tokens_chart(db, org_id, clock.now()),
            governance=await governance.get_governance(db, tenant, org_id),
            can_write=tenant.allows(org_id, Permission.ENDPOINTS_WRITE),
            can_validate=tenant.allows(org_id, Permission.MODELS_VALIDATE),
        )
    return await render(request, db, "endpoints/list.html", context, active="endpoints")


def summary(items: Sequence[EndpointRead]) -> dict[str, int]:
    live = [e for e in items if e.state != EndpointState.DELETED]
    return {
        "ready": sum(1 for e in live if e.state == EndpointState.READY),
        "working": sum(
            1 for e in live if e.state not in (EndpointState.READY, EndpointState.SCALED_TO_ZERO)
        ),
        "replicas": sum(e.ready_replicas for e in live),
        "pending": sum(1 for e in live for v in e.versions if v.approval == "pending"),
    }


ROUTES: list[Any] = [endpoints_page]
