"""The operator's fleet page: per region, utilization and allocation over the last 7 days,
power, energy at the GPUs and at the facility (PUE), CO2e, and stranded capacity (free
GPU share the offered shapes cannot use)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.identity.authz import ProviderScope, provider
from control_plane.identity.roles import ProviderPermission
from control_plane.inventory import service as inventory
from control_plane.telemetry.queries import fleet_utilization
from control_plane.tenancies.stranded import stranded_capacity
from portal.pages.insights import views
from portal.templating import collect, render

HOURS = 7 * 24


@get("/operator/fleet", opt=provider(ProviderPermission.INVENTORY_READ), name="portal:op-fleet")
async def fleet_page(
    request: Request[Any, Any, Any], db: AsyncSession, clock: Clock, operator: ProviderScope
) -> Template:
    until = views.hour_start(clock.now()) + timedelta(hours=1)
    since = until - timedelta(hours=HOURS)
    report = await fleet_utilization(db, since, until)
    stranded = {r.region: r for r in await stranded_capacity(db)}
    names = {r.code: r.name for r in await collect(lambda p: inventory.list_regions(db, p))}
    regions = [
        {
            "fleet": region,
            "name": names.get(region.region, region.region),
            "charts": views.fleet_charts(region),
            "stranded": stranded.pop(region.region, None),
        }
        for region in report.regions
    ]
    regions += [
        {"fleet": None, "name": names.get(code, code), "charts": None, "stranded": left}
        for code, left in sorted(stranded.items())
    ]
    context = {
        "page_title": "Fleet utilization",
        "regions": regions,
        "since": since,
        "until": until,
        "totals": {
            "energy_kwh": sum(r.energy_kwh for r in report.regions),
            "facility_kwh": sum(r.facility_kwh for r in report.regions),
            "co2e_kg": sum(r.co2e_kg for r in report.regions),
        },
    }
    return await render(request, db, "insights/fleet.html", context, active="op-fleet")


ROUTES: list[Any] = [fleet_page]
