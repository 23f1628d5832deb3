"""Pool pages: operators see each region's pools with a week timeline of their windows,
create pools and add or remove windows; tenants see the windows lent to them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import NotFound, ProblemError
from control_plane.identity.authz import ProviderScope, TenantScope, provider, tenant
from control_plane.identity.roles import Permission, ProviderPermission, provider_allows
from control_plane.inventory import service as inventory
from control_plane.pools import schedule, service
from control_plane.pools.schemas import PoolCreate, TenantOpening, WindowCreate, WindowRead
from portal.forms import FormState, convert, discard, read_form
from portal.pages.tenancies.common import org_of
from portal.templating import collect, render

PoolId = Annotated[str, Parameter(max_length=40)]
WindowId = Annotated[str, Parameter(max_length=40)]
Region = Annotated[str | None, Parameter(max_length=32)]
DAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CREATE_FIELDS = ("region", "name", "timezone", "drain_minutes", "description")
WINDOW_FIELDS = ("region", "org_id", "project_id", "start", "end")


def week_rows(windows: Sequence[WindowRead]) -> list[list[dict[str, Any]]]:
    """Bars of the week drawing, one list per day from Monday (x and width in minutes of
    the day); an overnight window continues at midnight in the next day's row."""
    rows: list[list[dict[str, Any]]] = [[] for _ in range(7)]
    for index, window in enumerate(windows):
        start = schedule.parse_hhmm(window.start)
        length = (schedule.parse_hhmm(window.end) - start) % (24 * 60) or 24 * 60
        label = f"{window.start}-{window.end}"
        for day in window.days:
            row = schedule.DAY_NAMES.index(day)
            first = min(length, 24 * 60 - start)
            rows[row].append({"x": start, "width": first, "series": index % 4 + 1,
                              "label": label})  # fmt: skip
            if length > first:
                rows[(row + 1) % 7].append({"x": 0, "width": length - first,
                                            "series": index % 4 + 1, "label": label})  # fmt: skip
    return rows


def opening_rows(openings: Sequence[TenantOpening], now: datetime) -> list[list[dict[str, Any]]]:
    """The coming week's openings, one row per UTC day from today."""
    today = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    rows: list[list[dict[str, Any]]] = []
    for day in range(7):
        day_start = today + timedelta(days=day)
        bars = []
        for opening in openings:
            start = max(opening.start, day_start)
            end = min(opening.end, day_start + timedelta(days=1))
            if start < end:
                bars.append({"x": int((start - day_start).total_seconds() // 60),
                             "width": int((end - start).total_seconds() // 60), "series": 1,
                             "label": f"{start:%H:%M}-{end:%H:%M} UTC"})  # fmt: skip
        rows.append(bars)
    return rows


# --- tenants -------------------------------------------------------------------------


@get("/pools", opt=tenant(Permission.TENANCIES_READ), name="portal:pools")
async def pools_page(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession, clock: Clock
) -> Template:
    org_id = org_of(tenant)
    now = clock.now()
    pools = await service.for_org(db, tenant, org_id, clock) if org_id else []
    today = now.astimezone(UTC).date()
    context = {
        "page_title": "Pools",
        "has_org": org_id is not None,
        "pools": [{"pool": p, "rows": opening_rows(p.openings, now)} for p in pools],
        "day_labels": [(today + timedelta(days=n)).strftime("%a %d") for n in range(7)],
    }
    return await render(request, db, "pools/mine.html", context, active="pools")


# --- operators -----------------------------------------------------------------------


@get("/operator/pools", opt=provider(ProviderPermission.INVENTORY_READ), name="portal:op-pools")
async def operator_pools_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    operator: ProviderScope,
    region: Region = None,
) -> Template:
    return await _operator_page(request, db, clock, operator, region, FormState(), FormState())


@post("/operator/pools", opt=provider(ProviderPermission.CAPACITY_WRITE), name="portal:op-pool")
async def create_pool(
    request: Request[Any, Any, Any], db: AsyncSession, clock: Clock, operator: ProviderScope
) -> Response[Any]:
    form = await read_form(request, CREATE_FIELDS)
    region = form.values["region"]
    values = {k: v for k, v in form.values.items() if k != "region" and v != ""}
    data = convert(form, PoolCreate, values, {"name": "Lower-case letters, digits, hyphens."})
    if data is not None:
        try:
            await service.create_pool(db, clock, region, data)
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
        else:
            return _back(region)
    form.message = form.message or "The pool was not created; check the highlighted fields."
    return await _operator_page(request, db, clock, operator, region, form, FormState(),
                                status_code=400)  # fmt: skip


@post(
    "/operator/pools/{pool_id:str}/windows",
    opt=provider(ProviderPermission.CAPACITY_WRITE),
    name="portal:op-pool-window",
)
async def add_window(
    request: Request[Any, Any, Any],
    pool_id: PoolId,
    db: AsyncSession,
    clock: Clock,
    operator: ProviderScope,
) -> Response[Any]:
    form = await read_form(request, WINDOW_FIELDS)
    region = form.values["region"]
    days = [d for d in (await request.form()).getall("days", []) if isinstance(d, str)]
    values: dict[str, Any] = {k: v for k, v in form.values.items() if k != "region" and v != ""}
    data = convert(form, WindowCreate, {**values, "days": days},
                   {"days": "Choose at least one day.", "start": "Use HH:MM, e.g. 08:00.",
                    "end": "Use HH:MM, e.g. 20:00."})  # fmt: skip
    if data is not None:
        try:
            await service.add_window(db, clock, region, pool_id, data)
        except NotFound:
            raise
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
        else:
            return _back(region)
    form.message = form.message or "The window was not added; check the highlighted fields."
    form.values["pool_id"] = pool_id
    return await _operator_page(request, db, clock, operator, region, FormState(), form,
                                status_code=400)  # fmt: skip


@post(
    "/operator/pools/{pool_id:str}/windows/{window_id:str}/delete",
    opt=provider(ProviderPermission.CAPACITY_WRITE),
    name="portal:op-pool-window-delete",
)
async def remove_window(
    request: Request[Any, Any, Any], pool_id: PoolId, window_id: WindowId, db: AsyncSession
) -> Response[Any]:
    form = await read_form(request, ["region"])
    await service.remove_window(db, form.values["region"], pool_id, window_id)
    return _back(form.values["region"])


def _back(region: str) -> Redirect:
    return Redirect(path=f"/operator/pools?{urlencode({'region': region})}",
                    status_code=HTTP_303_SEE_OTHER)  # fmt: skip


async def _operator_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    clock: Clock,
    operator: ProviderScope,
    region: str | None,
    create_form: FormState,
    window_form: FormState,
    status_code: int = 200,
) -> Template:
    regions = await collect(lambda page: inventory.list_regions(db, page))
    codes = [r.code for r in regions]
    chosen = region if region in codes else (codes[0] if codes else "")
    pools = await service.list_pools(db, clock, chosen) if chosen else []
    create_form.values.setdefault("drain_minutes", "30")
    create_form.values.setdefault("timezone", "UTC")
    context = {
        "page_title": "Pools",
        "regions": [(r.code, r.name) for r in regions],
        "region": chosen,
        "pools": [{"pool": p, "rows": week_rows(p.windows)} for p in pools],
        "can_write": provider_allows(
            operator.principal.provider_role, ProviderPermission.CAPACITY_WRITE
        ),
        "create_form": create_form,
        "window_form": window_form,
        "empty_form": FormState(),
        "day_names": list(zip(schedule.DAY_NAMES, DAY_LABELS, strict=True)),
        "day_labels": DAY_LABELS,
    }
    return await render(request, db, "pools/operator.html", context, active="op-pools",
                        status_code=status_code)  # fmt: skip


ROUTES: list[Any] = [pools_page, operator_pools_page, create_pool, add_window, remove_window]
