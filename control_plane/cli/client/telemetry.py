"""``cpctl utilization`` (your GPUs: utilization, memory, energy), ``cpctl fleet`` (operators:
fleet utilization and stranded capacity) and ``cpctl nodes agent-credential`` (operators:
the credentials node agents send telemetry with).

Not to be confused with ``cpctl agent``, the node agent itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from control_plane.cli.client.base import (
    Column,
    Invocation,
    api_command,
    columns,
    emit_json,
    emit_list,
    emit_table,
    node_id_of,
    org_id_of,
    write_secret,
)
from control_plane.sdk.telemetry import RegionStranded, ShapeFit
from control_plane.telemetry.schemas import FleetReport, GpuSeries, UtilizationReport

window_options = (
    click.option(
        "--since", type=click.DateTime(), help="UTC start (default: 7 days before --until)."
    ),
    click.option("--until", type=click.DateTime(), help="UTC end (default: now)."),
)
F = TypeVar("F", bound=Callable[..., Any])


def _with_window(fn: F) -> F:
    for option in reversed(window_options):
        fn = option(fn)
    return fn


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


# ---------------------------------------------------------------- utilization


@dataclass(frozen=True)
class GpuSummary:
    """One GPU over the window: hours reported, mean and p95 utilization, peak memory,
    energy."""

    gpu_id: str
    gpu_model: str
    tenancy_id: str
    share_milli: int
    hours: int
    util_mean: float
    util_p95: float
    mem_peak_mib: int
    energy_kwh: float


def summarize(series: GpuSeries) -> GpuSummary:
    """The hourly points folded: the mean of hourly means, the 95th percentile (nearest
    rank) of the hourly p95s, the highest memory, the energy summed."""
    points = series.points
    p95s = sorted(p.util_p95 for p in points)
    p95 = p95s[max(0, math.ceil(0.95 * len(p95s)) - 1)] if p95s else 0.0
    return GpuSummary(
        gpu_id=series.gpu_id,
        gpu_model=series.gpu_model,
        tenancy_id=series.tenancy_id,
        share_milli=series.share_milli,
        hours=len(points),
        util_mean=sum(p.util_mean for p in points) / len(points) if points else 0.0,
        util_p95=p95,
        mem_peak_mib=max((p.mem_max_mib for p in points), default=0),
        energy_kwh=sum(p.energy_wh for p in points) / 1000,
    )


GPU_COLUMNS: list[Column] = [
    *columns("gpu_id", "gpu_model", "tenancy_id"),
    ("SHARE", lambda g: f"{g.share_milli / 10:g}%"),
    *columns("hours"),
    ("MEAN %", lambda g: f"{g.util_mean:.1f}"),
    ("P95 %", lambda g: f"{g.util_p95:.1f}"),
    ("PEAK MEM GIB", lambda g: f"{g.mem_peak_mib / 1024:.1f}"),
    ("ENERGY KWH", lambda g: f"{g.energy_kwh:.2f}"),
]


@api_command(None, "utilization")
@click.option("--tenancy", help="Only this tenancy's GPUs.")
@_with_window
@click.option("--org", "org", metavar="ORG", help="Id or slug (default: current).")
def utilization(
    inv: Invocation,
    tenancy: str | None,
    since: datetime | None,
    until: datetime | None,
    org: str | None,
) -> None:
    """Your GPUs over a window (at most 31 days): per GPU, mean and p95 utilization, peak
    memory and energy; totals and idle GPU-hours."""
    with inv.client() as client:
        report = client.telemetry.utilization(
            since=_utc(since), until=_utc(until), tenancy=tenancy, org_id=org_id_of(client, org)
        )
    if inv.json:
        emit_json(report)
    else:
        show_utilization(report)


def show_utilization(report: UtilizationReport) -> None:
    click.echo(
        f"{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC: "
        f"{report.gpu_hours:,.1f} GPU-hours, {report.idle_gpu_hours:,.1f} idle "
        f"(peak under {report.idle_util_pct:g}%), mean utilization {report.util_mean:.1f}%, "
        f"{report.energy_kwh:,.2f} kWh"
    )
    if report.gpus:
        emit_table([summarize(g) for g in report.gpus], GPU_COLUMNS)
    else:
        click.echo("no GPU samples in this window", err=True)
    if report.truncated:
        click.echo("(more GPUs than shown: narrow with --tenancy)", err=True)


# ---------------------------------------------------------------- fleet (operators)


@click.group("fleet")
def fleet_group() -> None:
    """The fleet's utilization and stranded capacity (provider operators)."""


@api_command(fleet_group, "utilization")
@_with_window
def fleet_utilization(inv: Invocation, since: datetime | None, until: datetime | None) -> None:
    """Per region: GPUs, mean utilization, share allocated, energy and CO2e."""
    with inv.client() as client:
        report = client.telemetry.fleet(since=_utc(since), until=_utc(until))
    if inv.json:
        emit_json(report)
    else:
        show_fleet(report)


def show_fleet(report: FleetReport) -> None:
    click.echo(f"{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC")
    cols: list[Column] = [
        *columns("region", "gpus"),
        ("MEAN UTIL %", lambda r: f"{r.util_mean:.1f}"),
        ("ALLOCATED %", lambda r: f"{r.allocated_share * 100:.1f}"),
        ("GPU KWH", lambda r: f"{r.energy_kwh:,.1f}"),
        ("FACILITY KWH", lambda r: f"{r.facility_kwh:,.1f}"),
        ("CO2E KG", lambda r: f"{r.co2e_kg:,.1f}"),
    ]
    if report.regions:
        emit_table(report.regions, cols)
    else:
        click.echo("no region reported GPU samples in this window", err=True)


@api_command(fleet_group, "stranded")
def fleet_stranded(inv: Invocation) -> None:
    """Per region and offered shape, the free GPUs the shape cannot use (fragmentation)."""
    with inv.client() as client:
        regions = client.telemetry.stranded()
    if inv.json:
        emit_json(regions)
        return
    rows: list[tuple[RegionStranded, ShapeFit | None]] = []
    for region in regions:
        rows.extend((region, fit) for fit in region.shapes)
        if not region.shapes:
            rows.append((region, None))
    cols: list[Column] = [
        ("REGION", lambda row: row[0].region),
        ("FREE GPUS", lambda row: f"{row[0].free_gpus:g}"),
        ("SHAPE", lambda row: row[1].shape if row[1] else "(no shape offered)"),
        ("GPU MODEL", lambda row: row[1] and row[1].gpu_model),
        ("SIZE", lambda row: row[1] and _size(row[1].gpus_per_node, row[1].gpu_milli)),
        ("FITS", lambda row: row[1] and row[1].fits),
        ("USABLE GPUS", lambda row: row[1] and f"{row[1].usable_gpus:g}"),
        ("STRANDED GPUS", lambda row: row[1] and f"{row[1].stranded_gpus:g}"),
    ]
    emit_list(inv, rows, cols)


def _size(gpus_per_node: int, gpu_milli: int) -> str:
    return f"{gpus_per_node} GPU" if gpu_milli >= 1000 else f"{gpu_milli / 10:g}% of 1"


# ---------------------------------------------------------------- agent credentials


@click.group("agent-credential")
def agent_credential_group() -> None:
    """Credentials the node agent (cpctl agent) sends telemetry with (operators)."""


@api_command(agent_credential_group, "issue")
@click.argument("node")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the credential to this new file (mode 0600) instead of printing it.",
)
def credential_issue(inv: Invocation, node: str, out: Path | None) -> None:
    """A new credential for NODE's agent (an id or a hostname). It is shown only once."""
    if out is not None and out.exists():
        raise click.BadParameter(f"{out} exists; choose a new file", param_hint="--out")
    with inv.client() as client:
        issued = client.telemetry.agent_credentials.issue(node_id_of(client, node))
    if out is not None:
        write_secret(out, issued.credential + "\n")
        click.echo(f"credential {issued.id} ({issued.prefix}...) for {issued.node_id} "
                   f"written to {out} (mode 0600)", err=True)  # fmt: skip
        if inv.json:
            emit_json({"id": issued.id, "node_id": issued.node_id, "prefix": issued.prefix,
                       "created_at": issued.created_at, "file": str(out)})  # fmt: skip
        return
    if inv.json:
        emit_json(issued)
    else:
        click.echo(issued.credential)
    click.echo(
        f"credential {issued.id} for {issued.node_id}: shown once. Put it in a file only the "
        "agent can read (mode 0600), e.g.\n  umask 077; cat > /etc/cpctl-agent/credential\n"
        "then run: cpctl agent run --url URL --credential-file /etc/cpctl-agent/credential "
        "(or pass --out FILE next time)",
        err=True,
    )


@api_command(agent_credential_group, "list")
@click.argument("node")
def credential_list(inv: Invocation, node: str) -> None:
    """NODE's agent credentials (prefixes only), and when each was last used."""
    with inv.client() as client:
        creds = client.telemetry.agent_credentials.list(node_id_of(client, node))
    emit_list(inv, creds, columns("id", "prefix", "created_by", "created_at", "last_used_at",
                                  "revoked_at"))  # fmt: skip


@api_command(agent_credential_group, "revoke")
@click.argument("node")
@click.argument("credential_id")
def credential_revoke(inv: Invocation, node: str, credential_id: str) -> None:
    """Revoke CREDENTIAL_ID of NODE: its agent's next batch is refused."""
    with inv.client() as client:
        revoked = client.telemetry.agent_credentials.revoke(node_id_of(client, node),
                                                            credential_id)  # fmt: skip
    if inv.json:
        emit_json(revoked)
    else:
        click.echo(f"revoked {revoked.id} ({revoked.prefix}...) of {revoked.node_id}")
