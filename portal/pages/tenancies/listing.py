"""The tenancies list: filters by state, kind and region, the summary, the GPUs held per
day and the quota panel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.params import Parameter, QueryParameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.http.pagination import page_request
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.inventory import service as inventory
from control_plane.tenancies import quotas, service
from control_plane.tenancies.lifecycle import FINAL, TenancyState
from control_plane.tenancies.schemas import TenancySpan
from portal.forms import FormState
from portal.pages.tenancies.common import (
    KIND_LABELS,
    LABELS,
    STATE_LABELS,
    Filter,
    org_of,
    quota_rows,
)
from portal.templating import collect, day_label, render

PER_PAGE = 20
CHART_DAYS = 14
CHART_SCAN_LIMIT = 1000  # tenancies looked at for the chart; older ones rarely still matter


@get("/tenancies", opt=tenant(Permission.TENANCIES_READ), name="portal:tenancies")
async def tenancies_page(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    state_filter: Annotated[str | None, QueryParameter(name="state", max_length=32)] = None,
    kind: Filter = None,
    region: Filter = None,
    limit: Annotated[int | None, Parameter(ge=1, le=200)] = None,
    cursor: Annotated[str | None, Parameter(max_length=400)] = None,
) -> Template:
    org_id = org_of(tenant)
    raw = {"state": state_filter, "kind": kind, "region": region}
    form = FormState(values={k: (v or "").strip() for k, v in raw.items()})
    if form.values["state"] and form.values["state"] not in STATE_LABELS:
        form.errors["state"] = "Choose one of the listed states."
    if form.values["kind"] and form.values["kind"] not in KIND_LABELS:
        form.errors["kind"] = "Choose one of the listed kinds."
    regions = await collect(lambda page: inventory.list_regions(db, page))
    context: dict[str, Any] = {
        "page_title": "Tenancies",
        "has_org": org_id is not None,
        "form": form,
        "state_options": [(s, label) for s, label in STATE_LABELS.items()],
        "kind_options": list(KIND_LABELS.items()),
        "region_options": [(r.code, r.name) for r in regions],
        "tenancies": None,
        "quotas": [],
        "summary": None,
        "chart": None,
        "can_write": False,
        "filtered": any(form.values.values()),
        "next_url": "",
        "first_url": "",
        **LABELS,
    }
    if org_id is not None:
        tenant.require(org_id)
        page = page_request(limit, cursor, PER_PAGE, 200)
        if not form.errors:
            context["tenancies"] = await service.list_tenancies(
                db, tenant, org_id, page, state=form.values["state"] or None,
                kind=form.values["kind"] or None, region=form.values["region"] or None,
            )  # fmt: skip
        everything = await service.spans(db, tenant, org_id, CHART_SCAN_LIMIT)
        filters = {k: v for k, v in form.values.items() if v}
        listing = context["tenancies"]
        context.update(
            quotas=quota_rows(await quotas.for_org(db, org_id)),
            summary=_summary(everything),
            chart=gpus_held_chart(everything, clock.now()),
            can_write=tenant.allows(org_id, Permission.TENANCIES_WRITE),
            next_url=_list_url({**filters, "cursor": listing.next_cursor})
            if listing and listing.next_cursor
            else "",
            first_url=_list_url(filters) if cursor else "",
        )
    return await render(
        request, db, "tenancies/list.html", context, active="tenancies",
        status_code=400 if form.errors else 200,
    )  # fmt: skip


def _list_url(params: Mapping[str, str]) -> str:
    return "/tenancies" + (f"?{urlencode(params)}" if params else "")


def _summary(items: Sequence[TenancySpan]) -> dict[str, int]:
    live = [t for t in items if t.state not in FINAL]
    return {
        "active": sum(1 for t in live if t.state == TenancyState.ACTIVE),
        "working": sum(1 for t in live if t.state != TenancyState.ACTIVE),
        "gpus": sum(t.gpu_count for t in live),
        "simulated": sum(1 for t in live if t.simulated),
    }


def gpus_held_chart(items: Sequence[TenancySpan], now: datetime) -> dict[str, Any]:
    """Stacked bars: GPUs held on each of the last days (held at any time that day), per
    region. A tenancy holds its GPUs from its request until it is released."""
    today = now.astimezone(UTC).date()
    days = [today - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    regions = sorted({t.region for t in items})
    values: dict[str, list[int]] = {r: [0] * len(days) for r in regions}
    for tenancy in items:
        start = tenancy.created_at
        end = tenancy.released_at or now
        for index, day in enumerate(days):
            day_start = datetime.combine(day, time.min, tzinfo=UTC)
            if start < day_start + timedelta(days=1) and end >= day_start:
                values[tenancy.region][index] += tenancy.gpu_count
    return {
        "title": f"GPUs held per day, last {CHART_DAYS} days",
        "category": "Day (UTC)",
        "axis": "GPUs",
        "labels": [day_label(day) for day in days],
        "series": [
            {
                "key": region,
                "label": region,
                "color": f"--chart-series-{index % 4 + 1}",
                "values": values[region],
            }
            for index, region in enumerate(regions)
        ],
    }


ROUTES: list[Any] = [tenancies_page]
