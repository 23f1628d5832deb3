"""The access report: every request, decision, grant window and use, for auditors.

JSON for tools, CSV for spreadsheets: one CSV row per use, and one row for a request that
was never used, so nothing an operator asked for or did is missing from either form.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.http.pagination import PageRequest
from control_plane.identity.authz import TenantScope
from control_plane.sovereignty.access import repository
from control_plane.sovereignty.access.models import AccessRequest
from control_plane.sovereignty.access.schemas import AccessReport
from control_plane.sovereignty.access.service import details

CSV_COLUMNS = (
    "request_id",
    "kind",
    "operator_email",
    "operator_jurisdiction",
    "resource_type",
    "resource_id",
    "reason_code",
    "justification",
    "requested_at",
    "state",
    "decided_at",
    "decided_by",
    "decision_note",
    "window_start",
    "window_end",
    "ended_at",
    "ended_by",
    "review_verdict",
    "review_comment",
    "use_at",
    "use_purpose",
    "use_ledger_seq",
)
_BATCH = 500


async def access_report(
    db: AsyncSession, clock: Clock, scope: TenantScope, org_id: str
) -> AccessReport:
    """Every access request of the organization, newest first, with its uses."""
    now = clock.now()
    rows: list[AccessRequest] = []
    page = PageRequest(limit=_BATCH, after=None)
    while True:
        batch = await repository.org_requests(db, scope, org_id, page, None, now)
        rows.extend(batch[:_BATCH])
        if len(batch) <= _BATCH:
            break
        page = PageRequest(limit=_BATCH, after=batch[_BATCH - 1].id)
    return AccessReport(org_id=org_id, generated_at=now, requests=await details(db, rows, now))


def report_csv(report: AccessReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in report.requests:
        r = item.request
        base = [
            r.id,
            r.kind,
            r.operator_email,
            r.operator_jurisdiction or "",
            r.resource_type,
            r.resource_id,
            r.reason_code,
            r.justification,
            _time(r.requested_at),
            r.state,
            _time(r.decided_at),
            r.decided_by or "",
            r.decision_note or "",
            _time(r.approved_at),
            _time(r.expires_at),
            _time(r.ended_at),
            r.ended_by or "",
            r.review_verdict or "",
            r.review_comment or "",
        ]
        if not item.uses:
            writer.writerow([*map(_safe, base), "", "", ""])
        for use in item.uses:
            writer.writerow(map(_safe, [*base, _time(use.at), use.purpose, str(use.ledger_seq)]))
    return out.getvalue()


def _time(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def _safe(value: object) -> str:
    """Text a spreadsheet will not run as a formula (CSV injection)."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
