"""What every billing page shares: the current organization, the tabs a role may open,
usage amounts in the units people read (GPU-hours, tokens) and the usage chart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from litestar import Request
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.errors import NotFound
from control_plane.identity import projects
from control_plane.identity.authz import TenantScope
from control_plane.identity.roles import Permission
from control_plane.identity.schemas import ProjectRead
from control_plane.metering.schemas import UsageReport
from portal.templating import collect, day_label, hour_label, render

GPU = "gpu_seconds"
TYPE_LABELS = {
    "gpu_seconds": "GPU-hours",
    "tokens_in": "Input tokens",
    "tokens_out": "Output tokens",
    "cached_tokens": "Cached input tokens",
}
DIMENSION_LABELS = {
    "gpu_model": "GPU model",
    "project": "Project",
    "endpoint": "Endpoint",
    "model": "Model",
    "region": "Region",
    "tenancy_kind": "Tenancy kind",
    "tenancy": "Tenancy",
}
SERIES_COLOURS = 8  # --chart-series-1 … -8 in portal.css; the rest are summed as "Other"
_TABS = (
    ("overview", "/billing", "Overview", (Permission.USAGE_READ, Permission.BILLING_READ)),
    ("usage", "/billing/usage", "Usage", (Permission.USAGE_READ,)),
    ("invoices", "/billing/invoices", "Invoices", (Permission.BILLING_READ,)),
    ("budgets", "/billing/budgets", "Budgets", (Permission.BILLING_READ,)),
    ("profile", "/billing/profile", "Billing profile", (Permission.BILLING_READ,)),
)


def current_org(scope: TenantScope) -> str:
    """The organization the caller is working in (404 for people in none)."""
    org_id = scope.principal.default_org_id
    if org_id is None:
        raise NotFound(detail="You are not a member of an organization.")
    return org_id


def tabs(scope: TenantScope, org_id: str | None) -> list[dict[str, str]]:
    if org_id is None:
        return []
    return [
        {"key": key, "href": href, "label": label}
        for key, href, label, needs in _TABS
        if any(scope.allows(org_id, permission) for permission in needs)
    ]


async def page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    template: str,
    context: Mapping[str, Any],
    *,
    tab: str,
    status_code: int = 200,
) -> Template:
    """A billing page: the area's tabs plus the page's own context."""
    org_id = scope.principal.default_org_id
    full = {"tabs": tabs(scope, org_id), "tab": tab, "no_org": org_id is None, **context}
    return await render(request, db, template, full, active="billing", status_code=status_code)


async def org_projects(db: AsyncSession, scope: TenantScope, org_id: str) -> list[ProjectRead]:
    return await collect(lambda p: projects.list_projects(db, scope, org_id, p))


def amount(kind: str, value: Decimal) -> float | int:
    """GPU-seconds as GPU-hours (3 decimals), tokens as whole numbers, for charts and tables."""
    if kind == GPU:
        return float((value / 3600).quantize(Decimal("0.001")))
    return int(value)


def day_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def periods(since: datetime, until: datetime, granularity: str) -> list[datetime]:
    step = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    found, at = [], since
    while at < until:
        found.append(at)
        at += step
    return found


def group_totals(report: UsageReport, dimension: str) -> dict[str, Decimal]:
    """Each group's sum over the whole report, largest first."""
    sums: dict[str, Decimal] = {}
    for row in report.rows:
        key = row.group.get(dimension, "") if dimension else row.type
        sums[key] = sums.get(key, Decimal(0)) + row.value
    return dict(sorted(sums.items(), key=lambda kv: (-kv[1], kv[0])))


def usage_chart(
    report: UsageReport,
    kind: str,
    dimension: str,
    slots: Sequence[datetime],
    *,
    title: str,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A stacked bar per period, one series per group (the largest ones; the rest as Other)."""
    names = names or {}
    totals = group_totals(report, dimension)
    shown = list(totals)[: SERIES_COLOURS - 1] if len(totals) > SERIES_COLOURS else list(totals)
    index = {slot: n for n, slot in enumerate(slots)}
    values: dict[str, list[Decimal]] = {key: [Decimal(0)] * len(slots) for key in [*shown, "*"]}
    for row in report.rows:
        key = row.group.get(dimension, "") if dimension else row.type
        slot = index.get(row.period)
        if slot is not None:
            values[key if key in shown else "*"][slot] += row.value
    hourly = report.granularity == "hour"
    series = [
        {
            "key": f"usage-{n}",
            "color": f"--chart-series-{n % SERIES_COLOURS + 1}",
            "label": _group_label(key, dimension, names),
            "values": [amount(kind, v) for v in values[key]],
        }
        for n, key in enumerate(shown)
    ]
    if any(values["*"]):
        series.append(
            {
                "key": "usage-other",
                "color": f"--chart-series-{SERIES_COLOURS}",
                "label": "Other",
                "values": [amount(kind, v) for v in values["*"]],
            }
        )
    return {
        "title": title,
        "category": "Hour (UTC)" if hourly else "Day (UTC)",
        "axis": TYPE_LABELS.get(kind, kind),
        "labels": [hour_label(slot) if hourly else day_label(slot) for slot in slots],
        "series": series,
    }


def _group_label(key: str, dimension: str, names: Mapping[str, str]) -> str:
    if not dimension:
        return TYPE_LABELS.get(key, key)
    if not key:
        return "None"
    return names.get(key, key)
