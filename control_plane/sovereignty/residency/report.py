"""The residency report: every resource of an organization, where it lives, and the policy
clause that permits it (or that it is flagged), signed so an auditor can check it offline.

The report is one document (plain JSON values: strings, integers, booleans, null) rendered
as JSON, CSV or printable HTML. Every rendering is signed over its exact bytes with the
deployment region's audit signing key (Ed25519, the key that signs ledger checkpoints);
the JSON rendering also embeds a signature over the canonical JSON of the document
(``control_plane.audit.canonical``), which survives re-indentation. docs/residency.md
says how to verify both.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from html import escape
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.canonical import canonical_json, format_time
from control_plane.audit.signing import Keyring
from control_plane.clock import Clock
from control_plane.identity.authz import TenantScope
from control_plane.sovereignty.residency import service
from control_plane.sovereignty.residency.resources import ResourceSources
from control_plane.sovereignty.residency.schemas import (
    ReportPolicy,
    ReportResource,
    ReportSummary,
    ResidencyReport,
)

__all__ = ["CSV_COLUMNS", "REPORT_FORMAT", "Rendered", "build_report", "render", "sign"]

REPORT_FORMAT = "residency-report/1"
CSV_COLUMNS = (
    "kind",
    "id",
    "region_code",
    "jurisdiction",
    "description",
    "status",
    "rule",
    "explanation",
    "flagged_in_version",
)
_MEDIA_TYPES = {
    "json": "application/json",
    # Litestar appends "; charset=utf-8" to text types itself.
    "csv": "text/csv",
    "html": "text/html",
}


@dataclass(frozen=True)
class Rendered:
    """A rendering of the report: its bytes, media type and signature."""

    body: bytes
    media_type: str
    key_id: str
    signature: str


async def build_report(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    sources: ResourceSources,
    clock: Clock,
    region: str,
) -> ResidencyReport:
    """The report document for ``org_id`` under its current policy."""
    scope.require(org_id)
    current = await service.newest_version_row(db, org_id)
    policy = await service.current_policy(db, org_id)
    assessed = await service.assess(db, policy, await sources.collect(db, org_id))
    forced = await service.flagged_versions(db, org_id)
    resources = [
        ReportResource(
            kind=a.kind,
            id=a.id,
            region_code=a.region_code,
            jurisdiction=a.jurisdiction,
            description=a.description,
            status="permitted" if a.allowed else "flagged",
            rule=a.rule,
            explanation=a.explanation,
            flagged_in_version=None if a.allowed else forced.get((a.kind, a.id)),
        )
        for a in assessed
    ]
    flagged = sum(1 for r in resources if r.status == "flagged")
    return ResidencyReport(
        format=REPORT_FORMAT,
        org_id=org_id,
        generated_at=format_time(clock.now()),
        issuing_region=region,
        policy=ReportPolicy(
            version=current.version,
            template=current.template,
            changed_by_kind=current.changed_by_kind,
            changed_by_id=current.changed_by_id,
            created_at=None if current.created_at is None else format_time(current.created_at),
            **msgspec.structs.asdict(current.policy),
        ),
        summary=ReportSummary(
            resources=len(resources), permitted=len(resources) - flagged, flagged=flagged
        ),
        resources=resources,
    )


def sign(keyring: Keyring, region: str, message: bytes) -> tuple[str, str]:
    """(key_id, base64 Ed25519 signature) of ``message`` by the region's signing key."""
    key = keyring.signing_key(region)
    return key.key_id, key.sign(message)


def render(report: ResidencyReport, fmt: str, keyring: Keyring, region: str) -> Rendered:
    """The report as ``fmt`` (json, csv or html), signed over its exact bytes."""
    document: dict[str, Any] = msgspec.to_builtins(report)
    if fmt == "json":
        key_id, embedded = sign(keyring, region, canonical_json(document))
        key = next(k for k in keyring.public_keys(region) if k.key_id == key_id)
        wrapped = {
            "report": document,
            "signature": {
                "algorithm": "ed25519",
                "key_id": key_id,
                "public_key": key.public_key,
                "signed": "canonical JSON of `report`",
                "value": embedded,
            },
        }
        body = (json.dumps(wrapped, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    elif fmt == "csv":
        body = _csv(document).encode("utf-8")
    else:
        body = _html(document).encode("utf-8")
    key_id, signature = sign(keyring, region, body)
    return Rendered(body, _MEDIA_TYPES[fmt], key_id, signature)


def _csv(document: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in document["resources"]:
        writer.writerow(["" if row[c] is None else _cell(str(row[c])) for c in CSV_COLUMNS])
    return out.getvalue()


def _cell(value: str) -> str:
    """Neutralise spreadsheet formulas (a description could start with '=')."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def _html(document: dict[str, Any]) -> str:
    """A standalone, printable page: no scripts, no inline styles (the CSP forbids them)."""
    policy = document["policy"]
    summary = document["summary"]
    rows = "\n".join(
        "<tr>"
        + "".join(
            f"<td>{escape('' if r[c] is None else str(r[c]))}</td>"
            for c in ("kind", "id", "region_code", "jurisdiction", "description", "status", "rule")
        )
        + "</tr>"
        for r in document["resources"]
    )
    clauses = "\n".join(
        f"<dt>{escape(label)}</dt><dd>{escape(_clause(policy[key]))}</dd>"
        for key, label in (
            ("name", "Policy"),
            ("version", "Version"),
            ("classification", "Classification"),
            ("unrestricted", "Unrestricted"),
            ("allowed_jurisdictions", "Allowed jurisdictions"),
            ("allowed_groups", "Allowed sovereignty groups"),
            ("allowed_regions", "Allowed regions"),
            ("keys_in_region", "Keys in the data's region"),
            ("cross_border_export", "Cross-border export"),
            ("operator_jurisdictions", "Operator jurisdictions"),
        )
    )
    org = escape(document["org_id"])
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Residency report {org}</title>
<link rel="stylesheet" href="/static/css/portal.css">
</head>
<body class="report">
<main>
<h1>Residency report</h1>
<p>Organization {org}, generated {escape(document["generated_at"])} by region
{escape(document["issuing_region"])}. {summary["resources"]} resource(s):
{summary["permitted"]} permitted, {summary["flagged"]} flagged.</p>
<h2>Policy</h2>
<dl>
{clauses}
</dl>
<h2>Resources</h2>
<table>
<thead><tr><th scope="col">Kind</th><th scope="col">Id</th><th scope="col">Region</th>
<th scope="col">Jurisdiction</th><th scope="col">Description</th><th scope="col">Status</th>
<th scope="col">Clause</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<p>This file is signed: the X-Report-Signature header of the download is an Ed25519
signature of its exact bytes by key X-Report-Key-Id (see docs/residency.md).</p>
</main>
</body>
</html>
"""


def _clause(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value) if value else "(none)"
    return str(value)
