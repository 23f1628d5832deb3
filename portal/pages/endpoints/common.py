"""What the endpoint pages share: state labels, the organization a page acts on, the
services' dependencies, the reconciler's wake-up and the tokens-per-hour chart."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Annotated, Any

from litestar import Request
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.endpoints.schemas import Approval, EndpointState
from control_plane.endpoints.service import Deps
from control_plane.identity.authz import TenantScope
from control_plane.metering.service import usage_by_hour
from control_plane.settings import Settings
from control_plane.tenancies.drivers.registry import Drivers

EndpointName = Annotated[str, Parameter(max_length=63)]
Done = Annotated[str | None, Parameter(max_length=20)]
CHART_HOURS = 24
TOKEN_TYPES = ("tokens_in", "tokens_out")
STATE_LABELS: dict[str, str] = {
    EndpointState.DEPLOYING: "Deploying",
    EndpointState.READY: "Ready",
    EndpointState.SCALED_TO_ZERO: "Scaled to zero",
    EndpointState.AWAITING_APPROVAL: "Awaiting approval",
    EndpointState.DEGRADED: "Degraded",
    EndpointState.DELETING: "Deleting",
    EndpointState.DELETED: "Deleted",
}
APPROVAL_LABELS: dict[str, str] = {
    Approval.NOT_REQUIRED: "No approval needed",
    Approval.PENDING: "Pending approval",
    Approval.APPROVED: "Approved",
    Approval.REJECTED: "Rejected",
}
LABELS: dict[str, Any] = {"endpoint_states": STATE_LABELS, "approval_labels": APPROVAL_LABELS}


def org_of(scope: TenantScope) -> str | None:
    return scope.principal.default_org_id


def deps_of(request: Request[Any, Any, Any], clock: Clock, settings: Settings) -> Deps:
    drivers: Drivers = request.app.state.drivers
    return Deps(clock=clock, settings=settings, drivers=drivers)


async def tokens_chart(
    db: AsyncSession, org_id: str, now: datetime, endpoint_id: str | None = None
) -> dict[str, Any]:
    """Bars of tokens in and out per hour over the last day (from the usage events)."""
    since = now - timedelta(hours=CHART_HOURS - 1)
    dimension = ("endpoint", endpoint_id) if endpoint_id else None
    usage = await usage_by_hour(db, org_id, TOKEN_TYPES, since, now, dimension)
    labels = {"tokens_in": "Tokens in", "tokens_out": "Tokens out"}
    series: list[dict[str, Any]] = [
        {
            "key": kind,
            "label": labels[kind],
            "color": f"--chart-series-{index + 1}",
            "values": [int(v) for v in usage.values[kind]],
        }
        for index, kind in enumerate(TOKEN_TYPES)
    ]
    return {
        "title": f"Tokens per hour, last {CHART_HOURS} hours",
        "category": "Hour (UTC)",
        "axis": "Tokens",
        "labels": [hour.strftime("%H:00") for hour in usage.hours],
        "series": series,
        "total": sum(int(v) for kind in TOKEN_TYPES for v in usage.values[kind]),
    }


def live_stats(request: Request[Any, Any, Any], endpoint_id: str) -> dict[str, Any] | None:
    """The gateway's metrics for one endpoint since this process started, or None."""
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is None:
        return None
    stats = gateway.stats.all().get(endpoint_id)
    if stats is None:
        return None
    drift = {k: dataclasses.asdict(v) for k, v in stats.drift().items()}
    return {**stats.summary(), "drift": drift}
