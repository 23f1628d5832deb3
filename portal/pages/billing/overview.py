"""The billing overview: usage of the last 30 days for everyone who reads usage; for those
who read billing, the month-to-date cost, budgets, latest invoices and credits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from billing.budgets import service as budgets
from billing.invoices import costs
from billing.invoices import service as invoices
from billing.prices import service as prices
from control_plane.clock import Clock
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.metering.queries import usage_report
from portal.pages.billing.common import (
    GPU,
    TYPE_LABELS,
    amount,
    day_start,
    org_projects,
    page,
    periods,
    usage_chart,
)

DAYS = 30
LATEST_INVOICES = 5


@get("/billing", opt=tenant(Permission.USAGE_READ), name="portal:billing")
async def overview(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession, clock: Clock
) -> Template:
    org_id = tenant.principal.default_org_id
    context: dict[str, Any] = {"page_title": "Billing"}
    if org_id is None:
        return await page(request, db, tenant, "billing/overview.html", context, tab="overview")
    tenant.require(org_id)
    now = clock.now()
    until = day_start(now) + timedelta(days=1)
    since = until - timedelta(days=DAYS)
    by_model = await usage_report(
        db, tenant, org_id, since=since, until=until, group_by=["gpu_model"], types=[GPU]
    )
    overall = await usage_report(db, tenant, org_id, since=since, until=until)
    totals = {kind: 0.0 for kind in TYPE_LABELS}
    for row in overall.rows:
        totals[row.type] = totals.get(row.type, 0) + amount(row.type, row.value)
    context.update(
        usage_chart=usage_chart(
            by_model,
            GPU,
            "gpu_model",
            periods(since, until, "day"),
            title="GPU-hours per day, by GPU model",
        ),
        usage_totals=[
            (TYPE_LABELS[k], round(v, 3) if k == GPU else int(v)) for k, v in totals.items()
        ],
        can_bill=tenant.allows(org_id, Permission.BILLING_READ),
        month=now.strftime("%B %Y"),
    )
    if context["can_bill"]:
        context.update(await _billing(db, tenant, org_id, now.strftime("%Y-%m")))
    return await page(request, db, tenant, "billing/overview.html", context, tab="overview")


async def _billing(db: AsyncSession, scope: TenantScope, org_id: str, month: str) -> dict[str, Any]:
    """The money half of the overview (the caller holds billing:read)."""
    listed = await invoices.list_invoices(db, scope, org_id, limit=LATEST_INVOICES)
    return {
        "costs": await costs.cost_breakdown(db, scope, org_id, month),
        "budgets": await budgets.list_budgets(db, scope, org_id),
        "invoices": listed,
        "credits": [c for c in await prices.list_credits(db, scope, org_id) if c.remaining > 0],
        "project_names": {p.id: p.name for p in await org_projects(db, scope, org_id)},
    }


ROUTES = [overview]
