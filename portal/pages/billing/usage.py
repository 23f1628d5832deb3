"""The usage explorer: one usage type over 7, 30 or 90 days, per day or hour, stacked by
one dimension (GPU model, project, endpoint …), optionally for one project."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.metering.queries import usage_report
from portal.forms import FormState
from portal.pages.billing.common import (
    DIMENSION_LABELS,
    GPU,
    TYPE_LABELS,
    amount,
    day_start,
    group_totals,
    org_projects,
    page,
    periods,
    usage_chart,
)

RANGES = ("7", "30", "90")
HOURLY_MAX_DAYS = 7
Choice = Annotated[str | None, Parameter(max_length=40)]


def _form(values: dict[str, str], project_ids: set[str]) -> FormState:
    """The filter form with an error next to each choice that is not one of the options."""
    form = FormState(values=values)
    if values["days"] not in RANGES:
        form.errors["days"] = "Choose 7, 30 or 90 days."
    if values["group"] and values["group"] not in DIMENSION_LABELS:
        form.errors["group"] = "Choose one of the listed dimensions."
    if values["type"] not in TYPE_LABELS:
        form.errors["type"] = "Choose one of the listed usage types."
    if values["granularity"] not in ("day", "hour"):
        form.errors["granularity"] = "Choose per day or per hour."
    elif values["granularity"] == "hour" and values["days"] != str(HOURLY_MAX_DAYS):
        form.errors["granularity"] = "Hourly detail covers 7 days at most: choose 7 days."
    if values["project"] and values["project"] not in project_ids:
        form.errors["project"] = "Choose one of your projects."
    if form.errors:
        form.message = "Those filters cannot be shown; check the highlighted choices."
    return form


@get("/billing/usage", opt=tenant(Permission.USAGE_READ), name="portal:billing-usage")
async def usage_page(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    days: Choice = None,
    group: Choice = None,
    type: Choice = None,
    granularity: Choice = None,
    project: Choice = None,
) -> Template:
    org_id = tenant.principal.default_org_id
    context: dict[str, Any] = {"page_title": "Usage explorer"}
    if org_id is None:
        return await page(request, db, tenant, "billing/usage.html", context, tab="usage")
    tenant.require(org_id)
    listed = await org_projects(db, tenant, org_id)
    names = {p.id: p.name for p in listed}
    values = {
        "days": days or "30",
        "group": "gpu_model" if group is None else group,
        "type": type or GPU,
        "granularity": granularity or "day",
        "project": project or "",
    }
    form = _form(values, set(names))
    context.update(
        form=form,
        range_options=[(d, f"Last {d} days") for d in RANGES],
        group_options=list(DIMENSION_LABELS.items()),
        type_options=list(TYPE_LABELS.items()),
        granularity_options=[("day", "Per day"), ("hour", "Per hour (7 days)")],
        project_options=[(p.id, p.name) for p in listed],
        chart=None,
    )
    if form.failed:
        return await page(
            request, db, tenant, "billing/usage.html", context, tab="usage", status_code=400
        )
    context.update(await _explore(db, tenant, org_id, clock, values, names))
    return await page(request, db, tenant, "billing/usage.html", context, tab="usage")


async def _explore(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    clock: Clock,
    values: dict[str, str],
    names: dict[str, str],
) -> dict[str, Any]:
    kind, dimension, granularity = values["type"], values["group"], values["granularity"]
    until = day_start(clock.now()) + timedelta(days=1)
    since = until - timedelta(days=int(values["days"]))
    report = await usage_report(
        db,
        scope,
        org_id,
        since=since,
        until=until,
        granularity=granularity,
        group_by=[dimension] if dimension else [],
        types=[kind],
        filters={"project": values["project"]} if values["project"] else {},
    )
    label = TYPE_LABELS[kind]
    by = f", by {DIMENSION_LABELS[dimension].lower()}" if dimension else ""
    totals = group_totals(report, dimension)
    whole = sum(totals.values(), Decimal(0))
    return {
        "chart": usage_chart(
            report,
            kind,
            dimension,
            periods(since, until, granularity),
            title=f"{label} per {granularity}{by}",
            names=names if dimension == "project" else {},
        ),
        "unit": label,
        "dimension_label": DIMENSION_LABELS.get(dimension, "Usage type"),
        "total": amount(kind, whole),
        "rows": [
            {
                "group": _row_label(key, dimension, names),
                "code": key if dimension == "project" else "",
                "value": amount(kind, value),
                "share": float((value * 100 / whole).quantize(Decimal("0.1"))) if whole else 0.0,
            }
            for key, value in totals.items()
        ],
        "since": since,
        "until": until,
    }


def _row_label(key: str, dimension: str, names: dict[str, str]) -> str:
    if not dimension:
        return TYPE_LABELS.get(key, key)
    return (names.get(key, key) if dimension == "project" else key) or "None"


ROUTES = [usage_page]
