"""The dashboard: the current organization at a glance, and the fleet for operators."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from litestar import Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.identity import organizations
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.inventory import service as inventory
from control_plane.inventory.lifecycle import NodeState
from control_plane.inventory.schemas import InventorySummary, RegionRead
from portal.templating import STATE_LABELS, collect, day_label, is_operator, render

CHANGES_WINDOW_DAYS = 31


@get("/dashboard", opt=tenant(Permission.ORG_READ), name="portal:dashboard")
async def dashboard(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession, clock: Clock
) -> Template:
    principal = tenant.principal
    org_id = principal.default_org_id
    counts = await organizations.org_counts(db, clock, tenant, org_id) if org_id else None
    regions = await collect(lambda page: inventory.list_regions(db, page))
    context: dict[str, Any] = {
        "page_title": "Dashboard",
        "counts": counts,
        "regions": regions,
        "carbon_chart": carbon_chart(regions),
        "fleet": None,
    }
    if is_operator(principal):
        context["fleet"] = await _fleet(db, clock)
    return await render(request, db, "dashboard/index.html", context, active="dashboard")


async def _fleet(db: AsyncSession, clock: Clock) -> dict[str, Any]:
    summary = await inventory.summary(db)
    today = clock.now().astimezone(UTC).date()
    changes = await inventory.state_changes_per_day(
        db, today - timedelta(days=CHANGES_WINDOW_DAYS - 1), today
    )
    return {
        "summary": summary,
        "totals": _state_totals(summary),
        "gpus_chart": gpus_by_state_chart(summary),
        "changes_chart": {
            "title": "Node state changes per day",
            "category": "Day (UTC)",
            "axis": "Transitions",
            "labels": [day_label(day) for day in changes],
            "series": [
                {
                    "key": str(state),
                    "label": STATE_LABELS[state],
                    "values": [per_day.get(state, 0) for per_day in changes.values()],
                }
                for state in NodeState
                if any(state in per_day for per_day in changes.values())
            ],
        },
        "changes_total": sum(sum(per_day.values()) for per_day in changes.values()),
    }


def _state_totals(summary: InventorySummary) -> list[dict[str, Any]]:
    totals: dict[str, list[int]] = {}
    for region in summary.regions:
        for count in region.by_state:
            entry = totals.setdefault(count.state, [0, 0])
            entry[0] += count.nodes
            entry[1] += count.gpus
    return [
        {"state": str(s), "label": STATE_LABELS[s], "nodes": totals[s][0], "gpus": totals[s][1]}
        for s in NodeState
        if s in totals
    ]


def carbon_chart(regions: list[RegionRead]) -> dict[str, Any]:
    """Horizontal bars: the grid's carbon intensity where each region draws its power."""
    return {
        "title": "Grid carbon intensity by region",
        "category": "Region",
        "axis": "g CO₂e per kWh",
        "horizontal": True,
        "labels": [r.code for r in regions],
        "series": [
            {
                "key": "carbon",
                "label": "g CO₂e per kWh",
                "color": "--chart-carbon",
                "values": [r.grid_intensity_g_per_kwh for r in regions],
            }
        ],
    }


def gpus_by_state_chart(summary: InventorySummary) -> dict[str, Any]:
    """Stacked bars: one bar per region, one segment per lifecycle state (GPU counts)."""
    present = {c.state for r in summary.regions for c in r.by_state}
    by_region = {r.region_code: {c.state: c.gpus for c in r.by_state} for r in summary.regions}
    return {
        "title": "GPUs by state per region",
        "category": "Region",
        "axis": "GPUs",
        "labels": [r.region_code for r in summary.regions],
        "series": [
            {
                "key": str(state),
                "label": STATE_LABELS[state],
                "values": [by_region[r.region_code].get(state, 0) for r in summary.regions],
            }
            for state in NodeState
            if state in present
        ],
    }


ROUTES = [dashboard]
