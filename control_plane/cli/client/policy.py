"""``cpctl policy``: an organization's residency policy and its signed report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import click

from control_plane.cli.client.base import (
    Invocation,
    api_command,
    columns,
    emit_json,
    emit_list,
    emit_table,
    org_id_of,
)
from control_plane.sdk import ConflictError
from control_plane.sdk.residency import ReportFormat
from control_plane.sovereignty.residency.schemas import PolicyRead

org_option = click.option("--org", "org_ref", help="Organization id or slug (default: current).")
CLAUSE_COLUMNS = columns(
    "name",
    "classification",
    "unrestricted",
    "allowed_jurisdictions",
    "allowed_groups",
    "allowed_regions",
    "keys_in_region",
    "cross_border_export",
    "operator_jurisdictions",
)


@click.group("policy")
def policy_group() -> None:
    """Residency policy: where data, keys and operators may be (docs/residency.md)."""


@api_command(policy_group, "templates")
def policy_templates(inv: Invocation) -> None:
    """The templates a policy can start from."""
    with inv.client() as client:
        templates = client.residency.templates()
    cols = [("SLUG", lambda t: t.slug), *[(t, _of_policy(g)) for t, g in CLAUSE_COLUMNS]]
    emit_list(inv, templates, cols)


@api_command(policy_group, "show")
@org_option
def policy_show(inv: Invocation, org_ref: str | None) -> None:
    """The current policy version."""
    with inv.client() as client:
        current = client.residency.get(org_id_of(client, org_ref))
    _emit_version(inv, current)


@api_command(policy_group, "versions")
@org_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
def policy_versions(inv: Invocation, org_ref: str | None, limit: int) -> None:
    """Stored versions, newest first: who changed what, when, from which template."""
    with inv.client() as client:
        items = client.residency.versions(org_id_of(client, org_ref)).to_list(limit)
    cols = columns("version", "template", "changed_by_kind", "changed_by_id", "created_at")
    cols += [("NAME", lambda v: v.policy.name), ("FORCED", lambda v: v.forced)]
    emit_list(inv, items, cols)


def _clause_options(fn: Any) -> Any:
    """The options that set a policy's clauses (repeat list options for several values)."""
    options = [
        click.option("--template", help="canada-sovereign, eu-data-boundary or unrestricted."),
        click.option("--name", help="Policy name."),
        click.option("--classification", help="Data classification, e.g. 'Protected B'."),
        click.option("--jurisdiction", "allowed_jurisdictions", multiple=True, help="e.g. CA"),
        click.option("--group", "allowed_groups", multiple=True, help="e.g. EU"),
        click.option("--region", "allowed_regions", multiple=True, help="e.g. ca-qc-1"),
        click.option("--operator-jurisdiction", "operator_jurisdictions", multiple=True),
        click.option("--unrestricted/--restricted", default=None),
        click.option("--keys-in-region/--keys-anywhere-allowed", "keys_in_region", default=None),
        click.option("--export/--no-export", "cross_border_export", default=None),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _clauses(options: dict[str, Any]) -> dict[str, Any]:
    """The clauses actually given (an option left out keeps the current/template value)."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in options.items() if v not in (None, ())
    }


@api_command(policy_group, "set")
@org_option
@_clause_options
@click.option("--force", is_flag=True, help="Save even if existing resources fall outside.")
def policy_set(inv: Invocation, org_ref: str | None, force: bool, **options: Any) -> None:
    """Store a new policy version (refused if it strands resources, unless --force)."""
    clauses = _clauses(options)
    if not clauses:
        raise click.UsageError("give --template and/or clause options")
    with inv.client() as client:
        try:
            saved = client.residency.set(org_id_of(client, org_ref), force=force, **clauses)
        except ConflictError as exc:
            stranded = exc.body.get("resources") if isinstance(exc.body, dict) else None
            if isinstance(stranded, list):
                click.echo("These resources would fall outside the new policy:", err=True)
                for item in stranded:
                    click.echo(f"  {item['kind']} {item['id']} in {item['region_code']}", err=True)
                click.echo("Move them first, or repeat with --force to flag them.", err=True)
            raise
    _emit_version(inv, saved)


@api_command(policy_group, "preview")
@org_option
@_clause_options
def policy_preview(inv: Invocation, org_ref: str | None, **options: Any) -> None:
    """What a change would do to existing resources (stores nothing)."""
    with inv.client() as client:
        preview = client.residency.preview(org_id_of(client, org_ref), **_clauses(options))
    if inv.json:
        emit_json(preview)
        return
    click.echo(f"{preview.outside} of {len(preview.resources)} resource(s) would fall outside.")
    if preview.resources:
        cols = columns("kind", "id", "region_code", "jurisdiction", "allowed", "rule")
        emit_table(preview.resources, cols)


@api_command(policy_group, "evaluate")
@org_option
@click.option("--region", "region_code", required=True, help="Region code, e.g. se-north-1.")
def policy_evaluate(inv: Invocation, org_ref: str | None, region_code: str) -> None:
    """Would a placement in REGION be allowed under the current policy, and why?"""
    with inv.client() as client:
        result = client.residency.evaluate(org_id_of(client, org_ref), region_code)
    if inv.json:
        emit_json(result)
        return
    verdict = "allowed" if result.decision.allowed else "refused"
    click.echo(f"{verdict} ({result.decision.rule}, policy v{result.policy_version})")
    click.echo(result.decision.explanation)


@api_command(policy_group, "report")
@org_option
@click.option(
    "--format", "fmt", type=click.Choice(["json", "csv", "html"]), default="json", show_default=True
)
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path))
def policy_report(inv: Invocation, org_ref: str | None, fmt: str, out_file: Path) -> None:
    """Download the signed residency report; its signature is checked against the region's
    published keys and written beside it (OUT.sig, OUT.key-id)."""
    with inv.client() as client:
        chosen = cast(ReportFormat, fmt)  # click.Choice admits only these
        report = client.residency.report(org_id_of(client, org_ref), format=chosen)
        keys = {k.key_id: k.public_key for k in client.audit.keys().keys}
    out_file.write_bytes(report.content)
    Path(f"{out_file}.sig").write_text(report.signature + "\n")
    Path(f"{out_file}.key-id").write_text(report.key_id + "\n")
    verified = report.verify(keys)
    if inv.json:
        emit_json({"out": str(out_file), "key_id": report.key_id, "verified": verified})
    else:
        state = "signature verified" if verified else "SIGNATURE DID NOT VERIFY"
        click.echo(f"wrote {out_file} ({len(report.content)} bytes); {state}, key {report.key_id}")
    if not verified:
        raise click.exceptions.Exit(1)


def _of_policy(get: Any) -> Any:
    return lambda template: get(template.policy)


def _emit_version(inv: Invocation, version: PolicyRead) -> None:
    if inv.json:
        emit_json(version)
        return
    click.echo(
        f"version {version.version} ({version.template or 'custom'}), "
        f"changed {version.created_at or 'never'} by {version.changed_by_id or '-'}"
    )
    emit_table([version.policy], CLAUSE_COLUMNS)
    if version.flagged:
        click.echo(f"{len(version.flagged)} resource(s) flagged when saved with force:")
        emit_table(version.flagged, columns("kind", "id", "region_code"))
