"""The customer's waste dashboard: what idle GPUs cost over 30 days, what open advice would
save, a utilization heatmap of the last 7 days and the advice itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import NotFound
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.insights import service
from control_plane.insights.analysis import GpuPricer
from control_plane.insights.schemas import RecommendationRead
from control_plane.telemetry.queries import org_utilization
from control_plane.tenancies import service as tenancies
from portal.pages.insights import views
from portal.templating import render

DAYS = 30
HEATMAP_HOURS = 7 * 24
FILTERS = {
    "open": ("Open advice", ("open",)),
    "snoozed": ("Snoozed", ("snoozed",)),
    "applied": ("Applied", ("applied",)),
    "dismissed": ("Dismissed", ("dismissed",)),
    "resolved": ("Resolved (no longer seen)", ("resolved",)),
    "all": ("All advice", tuple(sorted(service.STATES))),
}
NOTICES = {
    "analysed": "Analysis done: the advice below reflects the latest hourly rollups.",
    "applied": "Advice applied.",
    "dismissed": "Advice dismissed: it will not be shown as open again.",
    "snoozed": "Advice snoozed: it comes back if it still applies when the snooze ends.",
}
SNOOZE_DAYS = (1, 7, 14, 30, 90)
Choice = Annotated[str | None, Parameter(max_length=20)]
RecRef = Annotated[str | None, Parameter(max_length=40)]


@get("/insights", opt=tenant(Permission.INSIGHTS_READ), name="portal:insights")
async def insights_page(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    show: Choice = None,
    done: Choice = None,
    rec: RecRef = None,
) -> Template:
    return await dashboard(request, db, tenant, clock, show=show, done=done, rec_id=rec)


async def _figures(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    clock: Clock,
    pricer: GpuPricer,
    open_advice: list[RecommendationRead] | None,
) -> dict[str, Any]:
    """The headline cards, the trend charts (one per currency) and the heatmap."""
    now = clock.now()
    since = now - timedelta(days=DAYS)
    report = await service.waste_report(db, scope, org_id, since, now, pricer, open_advice)
    days = views.day_labels((now - timedelta(days=DAYS)).date(), now.date())
    last = views.hour_start(now)
    hours = [last - timedelta(hours=n) for n in range(HEATMAP_HOURS - 1, -1, -1)]
    usage = await org_utilization(db, scope, org_id, hours[0], last + timedelta(hours=1))
    # Released long ago, or another project's (project keys): left unnamed.
    names = await tenancies.names(
        db, scope, org_id, [g.tenancy_id for g in usage.gpus if g.tenancy_id]
    )
    heat = views.heatmap(usage, hours, names)
    return {
        "waste": report,
        "trends": [(c, views.trend_chart(c, days)) for c in report.currencies if c.days],
        "heatmap": heat,
        "heatmap_table": views.heatmap_rows(heat),
        "utilization": usage,
        "days": DAYS,
    }


async def _notice(
    db: AsyncSession, scope: TenantScope, org_id: str, done: str | None, rec_id: str | None
) -> tuple[str, dict[str, Any] | None]:
    """The message after a form (and, after Apply, the advice it was about)."""
    text = NOTICES.get(done or "", "")
    if not text or not rec_id:
        return text, None
    try:
        row = views.advice_row(await service.get(db, scope, org_id, rec_id))
    except NotFound:
        return text, None
    return text, row


async def dashboard(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    clock: Clock,
    *,
    show: str | None = None,
    done: str | None = None,
    rec_id: str | None = None,
    failure: str = "",
    status_code: int = 200,
) -> Template:
    """The page, also as the answer to a form that failed (``failure`` above the advice)."""
    org_id = scope.principal.default_org_id
    show = show if show in FILTERS else "open"
    context: dict[str, Any] = {"page_title": "Waste & right-sizing", "no_org": org_id is None,
                               "failure": failure, "show": show}  # fmt: skip
    if org_id is not None:
        scope.require(org_id, Permission.INSIGHTS_READ)
        listed = await service.list_recommendations(db, scope, org_id, FILTERS[show][1])
        notice, noticed = await _notice(db, scope, org_id, done, rec_id)
        pricer: GpuPricer = request.app.state.gpu_prices
        open_advice = listed if show == "open" else None  # the same query, already made
        context.update(await _figures(db, scope, org_id, clock, pricer, open_advice))
        context.update(
            advice=[views.advice_row(r) for r in listed],
            notice=notice,
            noticed=noticed,
            filters=[(key, label) for key, (label, _) in FILTERS.items()],
            filter_label=FILTERS[show][0],
            snooze_days=SNOOZE_DAYS,
            can_write=scope.allows(org_id, Permission.INSIGHTS_WRITE),
        )
    return await render(
        request, db, "insights/index.html", context, active="insights", status_code=status_code
    )


ROUTES: list[Any] = [insights_page]
