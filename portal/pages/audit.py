"""The auditor's ledger browser: integrity at a glance, activity over time, filtered entries,
and the export bundle an auditor takes away and verifies offline."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit import service as audit
from control_plane.audit.recorder import audited_read
from control_plane.clock import Clock
from control_plane.errors import FieldError, InvalidInput, NotFound
from control_plane.http.pagination import page_request
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.inventory import service as inventory
from control_plane.settings import Settings
from portal.forms import FormState
from portal.templating import collect, day_label, render

ACTIVITY_DAYS = 30
ENTRIES_PER_PAGE = 25
OUTCOMES = ("success", "denied", "rejected", "failed", "allowed")
Text = Annotated[str | None, Parameter(max_length=100)]
Day = Annotated[str | None, Parameter(max_length=10)]


def _day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(
            detail="Dates are YYYY-MM-DD.", errors=[FieldError(f"query.{field}", "not a date")]
        ) from exc


def _window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """Whole UTC days: from the start of ``since`` to the end of ``until``."""
    first, last = _day(since, "since"), _day(until, "until")
    start = None if first is None else datetime.combine(first, time.min, UTC)
    end = None if last is None else datetime.combine(last, time.max, UTC)
    return start, end


def _org(scope: TenantScope) -> str:
    org_id = scope.principal.default_org_id
    if org_id is None:
        raise NotFound(detail="You are not a member of an organization.")
    return org_id


@get("/audit", opt=tenant(Permission.AUDIT_READ), name="portal:audit")
async def audit_page(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    settings: Settings,
    clock: Clock,
    action: Text = None,
    outcome: Text = None,
    since: Day = None,
    until: Day = None,
    cursor: Annotated[str | None, Parameter(max_length=400)] = None,
) -> Template:
    org_id = tenant.principal.default_org_id
    if org_id is None:
        context = {"page_title": "Audit ledger", "no_org": True, "region": settings.region}
        return await render(request, db, "audit/index.html", context, active="audit")
    form = FormState(
        values={
            "action": action or "",
            "outcome": outcome or "",
            "since": since or "",
            "until": until or "",
        }
    )
    start, end = _window(since, until)
    where = audit.EntryFilter(action or None, outcome or None, None, start, end)
    page = page_request(ENTRIES_PER_PAGE, cursor, ENTRIES_PER_PAGE, ENTRIES_PER_PAGE)
    listing = await audit.list_entries(db, tenant, settings, org_id, page, where)
    today = clock.now().astimezone(UTC).date()
    per_day = await audit.entries_per_day(
        db, tenant, settings, org_id, today - timedelta(days=ACTIVITY_DAYS - 1), today
    )
    filters = {k: v for k, v in form.values.items() if v}
    jurisdictions = await _jurisdictions(db)
    form.values["destination"] = jurisdictions.get(settings.region, "")
    context = {
        "page_title": "Audit ledger",
        "no_org": False,
        "listing": listing,
        "status": await audit.chain_status(db, tenant, settings, org_id),
        "keys": audit.public_keys(settings, clock.now()),
        "activity_chart": _activity_chart(per_day),
        "activity_total": sum(sum(d.values()) for d in per_day.values()),
        "form": form,
        "outcome_options": [(o, o.capitalize()) for o in OUTCOMES],
        "next_query": urlencode({**filters, "cursor": listing.next_cursor})
        if listing.next_cursor
        else "",
        "filtered": bool(filters),
        "region": settings.region,
        "can_export": tenant.allows(org_id, Permission.AUDIT_EXPORT),
        "destination_options": [(j, j) for j in sorted(set(jurisdictions.values()))],
    }
    return await render(request, db, "audit/index.html", context, active="audit")


async def _jurisdictions(db: AsyncSession) -> dict[str, str]:
    """Region code → jurisdiction, for the export's destination choices."""
    regions = await collect(lambda page: inventory.list_regions(db, page))
    return {r.code: r.jurisdiction for r in regions}


def _activity_chart(per_day: dict[date, dict[str, int]]) -> dict[str, Any]:
    present = [o for o in OUTCOMES if any(o in counts for counts in per_day.values())]
    return {
        "title": "Ledger entries per day",
        "category": "Day (UTC)",
        "axis": "Entries",
        "labels": [day_label(day) for day in per_day],
        "series": [
            {
                "key": f"outcome-{outcome}",
                "label": outcome.capitalize(),
                "values": [counts.get(outcome, 0) for counts in per_day.values()],
            }
            for outcome in present
        ],
    }


@get(
    "/audit/export",
    opt={**tenant(Permission.AUDIT_EXPORT), **audited_read()},
    name="portal:audit-export",
)
async def audit_export(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    settings: Settings,
    clock: Clock,
    since: Day = None,
    until: Day = None,
    destination: Annotated[str | None, Parameter(pattern=r"^([A-Za-z]{2})?$")] = None,
) -> Response[bytes]:
    org_id = _org(tenant)
    start, end = _window(since, until)
    content = await audit.export_zip(
        db,
        request.app.state.sessionmaker,
        tenant,
        settings,
        clock,
        org_id,
        start,
        end,
        destination.upper() if destination else None,
    )
    name = f"audit-{org_id}-{settings.region}-{clock.now():%Y%m%dT%H%M%SZ}.zip"
    return Response(
        content,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


ROUTES = [audit_page, audit_export]
