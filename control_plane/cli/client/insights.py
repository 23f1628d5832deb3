"""``cpctl insights``: right-sizing advice (list, show, apply, dismiss, snooze, analyse now)
and the waste report: what idle GPUs cost and what the open advice would save."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import click

from control_plane.cli.client.base import (
    Column,
    Invocation,
    api_command,
    emit_json,
    emit_list,
    emit_one,
    emit_table,
    org_id_of,
)
from control_plane.cli.client.tenancies import money
from control_plane.insights.schemas import RecommendationRead, WasteReport
from control_plane.sdk import Client, NotFoundError
from control_plane.sdk.insights import STATES
from control_plane.tenancies.schemas import TenancyRead

org_option = click.option("--org", "org", metavar="ORG", help="Id or slug (default: current).")
REC_FIELDS = (
    "id",
    "title",
    "rule",
    "state",
    "target_kind",
    "target_id",
    "target_name",
    "region",
    "monthly_savings",
    "currency",
    "energy_kwh_month",
    "co2e_kg_month",
    "confidence",
    "wasted_gpu_hours",
    "note",
    "snoozed_until",
    "first_seen_at",
    "last_seen_at",
    "decided_at",
    "decided_by",
)
REC_COLUMNS: list[Column] = [
    ("ID", lambda r: r.id),
    ("TARGET", lambda r: r.target_name or r.target_id),
    ("ADVICE", lambda r: r.action.summary),
    ("SAVES/MONTH", lambda r: f"{money(r.monthly_savings)} {r.currency}"),
    ("CONFIDENCE", lambda r: f"{r.confidence:.0%}"),
    ("STATE", lambda r: r.state),
]


@click.group("insights")
def insights_group() -> None:
    """Right-sizing advice for your GPUs, and what idle GPUs cost you."""


@api_command(insights_group, "list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES),
    help="Repeatable (default: open).",
)
@org_option
def insights_list(inv: Invocation, states: tuple[str, ...], org: str | None) -> None:
    """Recommendations, biggest monthly savings first."""
    with inv.client() as client:
        recs = client.insights.list(states or "open", org_id=org_id_of(client, org))
    emit_list(inv, recs, REC_COLUMNS)


@api_command(insights_group, "show")
@click.argument("rec_id")
@org_option
def insights_show(inv: Invocation, rec_id: str, org: str | None) -> None:
    """Show recommendation REC_ID: the advice, what it saves and the evidence."""
    with inv.client() as client:
        rec = client.insights.get(rec_id, org_id=org_id_of(client, org))
    show_recommendation(inv, rec)


@api_command(insights_group, "apply")
@click.argument("rec_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@org_option
def insights_apply(inv: Invocation, rec_id: str, yes: bool, org: str | None) -> None:
    """Carry out REC_ID (resize, release, schedule or scale), after showing what changes."""
    with inv.client() as client:
        org_id = org_id_of(client, org)
        rec = client.insights.get(rec_id, org_id=org_id)
        for line in planned_changes(client, org_id, rec):
            click.echo(line, err=True)
        if not yes and rec.state in ("open", "snoozed"):  # else the server says why not
            click.confirm("Apply this advice?", abort=True, err=True)
        applied = client.insights.apply(rec_id, org_id=org_id)
    show_recommendation(inv, applied)


@api_command(insights_group, "dismiss")
@click.argument("rec_id")
@click.option("--reason", default="", help="Why (kept with the advice).")
@org_option
def insights_dismiss(inv: Invocation, rec_id: str, reason: str, org: str | None) -> None:
    """Hide REC_ID for good: the analysis will not reopen it."""
    with inv.client() as client:
        rec = client.insights.dismiss(rec_id, reason, org_id=org_id_of(client, org))
    show_recommendation(inv, rec)


@api_command(insights_group, "snooze")
@click.argument("rec_id")
@click.option("--days", type=click.IntRange(1, 90), default=7, show_default=True)
@org_option
def insights_snooze(inv: Invocation, rec_id: str, days: int, org: str | None) -> None:
    """Hide REC_ID for --days; it comes back then if it still holds."""
    with inv.client() as client:
        rec = client.insights.snooze(rec_id, days, org_id=org_id_of(client, org))
    show_recommendation(inv, rec)


@api_command(insights_group, "analyze")
@org_option
def insights_analyze(inv: Invocation, org: str | None) -> None:
    """Analyse your GPUs now (it also runs in the background every hour)."""
    with inv.client() as client:
        result = client.insights.analyze(org_id=org_id_of(client, org))
    if inv.json:
        emit_json(result)
        return
    click.echo(
        f"analysed {result.tenancies} tenancies and {result.endpoints} endpoints: "
        f"{result.findings} findings ({result.new} new, {result.updated} updated, "
        f"{result.reopened} reopened, {result.resolved} resolved)"
    )
    if result.unpriced:
        click.echo(f"{result.unpriced} without a price (no price book covers them)", err=True)


@api_command(insights_group, "waste")
@click.option("--days", type=click.IntRange(1, 400), default=30, show_default=True)
@org_option
def insights_waste(inv: Invocation, days: int, org: str | None) -> None:
    """What idle GPUs cost over the last --days, and what the open advice would save."""
    with inv.client() as client:
        report = client.insights.waste(days, org_id=org_id_of(client, org))
    if inv.json:
        emit_json(report)
    else:
        show_waste(report)


def show_recommendation(inv: Invocation, rec: RecommendationRead) -> None:
    """The fields, then the action and its evidence (tables only)."""
    emit_one(inv, rec, REC_FIELDS)
    if inv.json:
        return
    width = max(map(len, REC_FIELDS))
    click.echo(f"{'action':<{width}}  {rec.action.kind}: {rec.action.summary}")
    for key, value in sorted(rec.evidence.items()):
        click.echo(f"{'evidence':<{width}}  {key}: {_plain(value)}")


def planned_changes(client: Client, org_id: str, rec: RecommendationRead) -> list[str]:
    """What applying ``rec`` changes, for the confirmation: each tenancy setting from its
    current value to the advised one."""
    lines = [
        f"{rec.title}",
        f"  {rec.target_kind} {rec.target_name or rec.target_id} ({rec.target_id}): "
        f"{rec.action.summary}",
    ]
    current: TenancyRead | None = None
    if rec.target_kind == "tenancy":
        try:
            current = client.tenancies.get(rec.target_id, org_id=org_id)
        except NotFoundError:
            current = None
    if rec.action.kind == "release":
        state = current.state if current is not None else "?"
        lines.append(f"  state: {state} -> released (its GPUs return to the pool)")
    for key, value in sorted(rec.action.params.items()):
        if current is None:
            lines.append(f"  {key.replace('_', ' ')}: {_plain(value)}")
            continue
        before = _setting(current, key)
        if before != value:
            lines.append(f"  {key.replace('_', ' ')}: {_plain(before)} -> {_plain(value)}")
    lines.append(f"  saves about {money(rec.monthly_savings)} {rec.currency} a month")
    return lines


def _setting(tenancy: TenancyRead, key: str) -> Any:
    """A tenancy's current value of an advised setting (the GPU share is per allocation)."""
    if key == "gpu_milli":
        return tenancy.allocations[0].gpu_milli if tenancy.allocations else None
    return getattr(tenancy, key, None)


def show_waste(report: WasteReport) -> None:
    """One row per currency, then the energy and CO2e the open advice would save."""
    click.echo(f"GPU waste from {report.since} to {report.until} (organization {report.org_id})")
    if not report.currencies:
        click.echo("no GPU-hours held and no open advice in this period")
    else:
        cols: list[Column] = [
            ("CURRENCY", lambda c: c.currency),
            ("WASTED", lambda c: money(c.wasted)),
            ("GPU-HOURS", lambda c: f"{c.gpu_hours:,.1f}"),
            ("IDLE GPU-HOURS", lambda c: f"{c.idle_gpu_hours:,.1f}"),
            ("IDLE %", lambda c: _share(c.idle_gpu_hours, c.gpu_hours)),
            ("SAVINGS/MONTH", lambda c: money(c.open_savings_per_month)),
        ]
        emit_table(report.currencies, cols)
    click.echo(f"open recommendations: {report.open_recommendations}")
    click.echo(f"if applied, they save {_amount(report.energy_kwh_month)} kWh and "
               f"{_amount(report.co2e_kg_month)} kg CO2e a month")  # fmt: skip


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _amount(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.1')):,f}"


def _plain(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(map(_plain, value))
    return str(value)
