"""``cpctl access``: operator access approval.

Operators (``cpctl login``) ask for access, list and withdraw their own requests, break the
glass, and under a grant read support data or open a tenant VM's console. Tenant admins
approve, deny, revoke and review; auditors read the report. Tenant commands act on
``--org`` (id or slug), else on your current organization; ``list`` and ``show`` without
one show an operator's own requests.
"""

from __future__ import annotations

from pathlib import Path

import click

from control_plane.cli.client.base import (
    Invocation,
    api_command,
    columns,
    emit_json,
    emit_list,
    emit_one,
    emit_table,
    limit_option,
    org_id_of,
)
from control_plane.sdk import Client
from control_plane.sovereignty.access.lifecycle import (
    AccessState,
    ReasonCode,
    ResourceType,
    ReviewVerdict,
)
from control_plane.sovereignty.access.schemas import AccessRequestDetail, AccessRequestRead

REQUEST_FIELDS = (
    "id",
    "org_id",
    "kind",
    "state",
    "operator_email",
    "operator_jurisdiction",
    "resource_type",
    "resource_id",
    "reason_code",
    "justification",
    "duration_minutes",
    "requested_at",
    "decide_by",
    "decided_at",
    "decided_by",
    "decision_note",
    "approved_at",
    "expires_at",
    "ended_at",
    "review_required",
    "review_verdict",
    "review_comment",
)
LIST_COLUMNS = columns("id", "state", "kind", "operator_email", "resource_type", "resource_id")
LIST_COLUMNS += columns("expires_at")
org_option = click.option("--org", "org_ref", help="Organization id or slug (default: current).")


def _ask_options(fn: click.decorators.FC) -> click.decorators.FC:
    """What an operator says when asking: organization, resource, reason, time."""
    for option in reversed(
        [
            click.option("--org", "org_ref", required=True, help="Organization id or slug."),
            click.option(
                "--resource",
                "resource_type",
                type=click.Choice([r.value for r in ResourceType]),
                default=ResourceType.SUPPORT_DATA.value,
                show_default=True,
            ),
            click.option("--resource-id", help="The tenancy or node id (not for support data)."),
            click.option(
                "--reason",
                "reason_code",
                type=click.Choice([r.value for r in ReasonCode]),
                required=True,
            ),
            click.option(
                "--justification", required=True, help="Shown to the tenant, kept in its ledger."
            ),
            click.option(
                "--duration", "minutes", type=int, default=60, show_default=True, help="Minutes."
            ),
        ]
    ):
        fn = option(fn)
    return fn


@click.group("access")
def access_group() -> None:
    """Operator access to tenant resources: requests, approvals, break-glass, report."""


def _emit_request(inv: Invocation, item: AccessRequestRead) -> None:
    emit_one(inv, item, REQUEST_FIELDS)


@api_command(access_group, "request")
@_ask_options
def access_request(
    inv: Invocation,
    org_ref: str,
    resource_type: str,
    resource_id: str | None,
    reason_code: str,
    justification: str,
    minutes: int,
) -> None:
    """Ask an organization for access (operators); it stays pending until they decide."""
    with inv.client() as client:
        made = client.access.request(
            org_ref, resource_type, reason_code, justification, minutes, resource_id
        )
    _emit_request(inv, made)


@api_command(access_group, "break-glass")
@_ask_options
def access_break_glass(
    inv: Invocation,
    org_ref: str,
    resource_type: str,
    resource_id: str | None,
    reason_code: str,
    justification: str,
    minutes: int,
) -> None:
    """Emergency access (operator-admins): active at once for at most 240 minutes; the
    organization is notified at once and reviews it afterwards."""
    with inv.client() as client:
        made = client.access.break_glass(
            org_ref, resource_type, reason_code, justification, minutes, resource_id
        )
    _emit_request(inv, made)


def _tenant_org(client: Client, org_ref: str | None, mine: bool) -> str | None:
    """The organization to act on, or None for an operator's own requests."""
    if org_ref is not None:
        return org_id_of(client, org_ref)
    if mine:
        return None
    return client.me().current_org_id


@api_command(access_group, "list")
@org_option
@click.option("--mine", is_flag=True, help="Your own requests (operators), not an organization's.")
@click.option("--state", type=click.Choice([s.value for s in AccessState]))
@click.option("--needs-review", is_flag=True, help="Only break-glass access not yet reviewed.")
@limit_option
def access_list(
    inv: Invocation,
    org_ref: str | None,
    mine: bool,
    state: str | None,
    needs_review: bool,
    limit: int | None,
) -> None:
    """Access requests, newest first: an organization's, or your own as an operator."""
    with inv.client() as client:
        org_id = _tenant_org(client, org_ref, mine)
        if org_id is None:
            items = client.access.list(state=state).to_list(limit)
        else:
            found = client.access.org(org_id).list(state=state, needs_review=needs_review)
            items = found.to_list(limit)
    emit_list(inv, items, LIST_COLUMNS)


@api_command(access_group, "show")
@click.argument("request_id")
@org_option
@click.option("--mine", is_flag=True, help="One of your own requests (operators).")
def access_show(inv: Invocation, request_id: str, org_ref: str | None, mine: bool) -> None:
    """One request with every use of it."""
    with inv.client() as client:
        org_id = _tenant_org(client, org_ref, mine)
        detail: AccessRequestDetail = (
            client.access.get(request_id)
            if org_id is None
            else client.access.org(org_id).get(request_id)
        )
    if inv.json:
        emit_json(detail)
        return
    _emit_request(inv, detail.request)
    if detail.uses:
        click.echo("")
        emit_table(detail.uses, columns("at", "purpose", "ledger_chain", "ledger_seq"))


def _decision(name: str, help_text: str) -> None:
    @api_command(access_group, name, help_text=help_text)
    @click.argument("request_id")
    @org_option
    def command(inv: Invocation, request_id: str, org_ref: str | None) -> None:
        with inv.client() as client:
            org = client.access.org(org_id_of(client, org_ref))
            result = org.approve(request_id) if name == "approve" else org.revoke(request_id)
        _emit_request(inv, result)


_decision("approve", "Approve REQUEST_ID: its grant window opens now.")
_decision("revoke", "End the grant of REQUEST_ID now.")


@api_command(access_group, "deny")
@click.argument("request_id")
@org_option
@click.option("--reason", required=True, help="Why (the operator sees it).")
def access_deny(inv: Invocation, request_id: str, org_ref: str | None, reason: str) -> None:
    """Deny REQUEST_ID."""
    with inv.client() as client:
        result = client.access.org(org_id_of(client, org_ref)).deny(request_id, reason)
    _emit_request(inv, result)


@api_command(access_group, "review")
@click.argument("request_id")
@org_option
@click.option("--verdict", type=click.Choice([v.value for v in ReviewVerdict]), required=True)
@click.option("--comment", default="")
def access_review(
    inv: Invocation, request_id: str, org_ref: str | None, verdict: str, comment: str
) -> None:
    """Review a break-glass access afterwards: accepted or disputed."""
    with inv.client() as client:
        org = client.access.org(org_id_of(client, org_ref))
        result = org.review(request_id, verdict, comment)
    _emit_request(inv, result)


@api_command(access_group, "report")
@org_option
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
def access_report(inv: Invocation, org_ref: str | None, fmt: str, out: Path | None) -> None:
    """Every request, decision, grant window and use (auditors)."""
    with inv.client() as client:
        org = client.access.org(org_id_of(client, org_ref))
        if fmt == "csv":
            _write(org.report_csv(), out)
            return
        report = org.report()
    if fmt == "json" or inv.json:
        emit_json(report)
        return
    rows = [(item.request, len(item.uses)) for item in report.requests]
    cols = [(title, (lambda row, get=get: get(row[0]))) for title, get in LIST_COLUMNS]
    emit_table(rows, [*cols, ("USES", lambda row: row[1])])


def _write(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


@api_command(access_group, "support-data")
@click.argument("org_id")
@click.option("--purpose", help="Why you look (recorded in the organization's ledger).")
def access_support_data(inv: Invocation, org_id: str, purpose: str | None) -> None:
    """ORG_ID's support snapshot, under an approved support_data grant."""
    with inv.client() as client:
        snapshot = client.access.support_data(org_id, purpose)
    if inv.json:
        emit_json(snapshot)
        return
    emit_one(inv, snapshot, ("org_id", "slug", "name", "member_count", "grant_expires_at"))
    emit_table(snapshot.projects, columns("id", "slug", "name"))


@api_command(access_group, "console")
@click.argument("org_id")
@click.argument("tenancy_id")
@click.option(
    "--purpose",
    required=True,
    help="Why you open it, 5 to 200 characters (recorded in the organization's ledger).",
)
def access_console(inv: Invocation, org_id: str, tenancy_id: str, purpose: str) -> None:
    """A console link to VM TENANCY_ID of ORG_ID, under an approved grant for that tenancy
    (cpctl access request --resource tenancy --resource-id TENANCY_ID); refused otherwise."""
    with inv.client() as client:
        link = client.access.console(org_id, tenancy_id, purpose)
    emit_one(inv, link, ("url", "protocol", "expires_at"))
