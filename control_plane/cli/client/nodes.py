"""``cpctl nodes``: the fleet, for provider operators (sign in with ``cpctl login``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

import click

from control_plane.cli.client.base import (
    Column,
    Invocation,
    _attr,
    api_command,
    columns,
    emit_json,
    emit_list,
    emit_one,
    emit_table,
    limit_option,
    node_id_of,
)
from control_plane.cli.client.telemetry import agent_credential_group
from control_plane.sdk.models import NodeState

NODE_STATE = click.Choice([s.value for s in NodeState])
NODE_FIELDS = (
    "id",
    "hostname",
    "region_code",
    "site_code",
    "rack",
    "gpu_model_code",
    "gpu_count",
    "state",
    "state_changed_at",
    "allowed_transitions",
    "firmware_version",
    "driver_version",
    "bmc_endpoint",
)
reason_option = click.option("--reason", required=True, help="Why (kept in the node's history).")


@click.group("nodes")
def nodes_group() -> None:
    """The fleet (provider operators; sign in with cpctl login)."""


nodes_group.add_command(agent_credential_group)


@api_command(nodes_group, "list")
@click.option("--region")
@click.option("--state", type=NODE_STATE)
@click.option("--gpu-model")
@click.option("--hostname", help="Hostname prefix.")
@click.option("--site")
@limit_option
def nodes_list(
    inv: Invocation,
    limit: int | None,
    region: str | None,
    state: str | None,
    gpu_model: str | None,
    hostname: str | None,
    site: str | None,
) -> None:
    """Nodes by hostname, filtered by region, state, GPU model, hostname prefix or site."""
    with inv.client() as client:
        nodes = client.nodes.list(
            region=region, state=state, gpu_model=gpu_model, hostname=hostname, site=site
        ).to_list(limit)
    cols = columns("hostname", "region_code", "site_code", "gpu_model_code", "gpu_count", "state")
    emit_list(inv, nodes, [("ID", _attr("id")), *cols])


@api_command(nodes_group, "get")
@click.argument("node")
def nodes_get(inv: Invocation, node: str) -> None:
    """Show NODE (an id or a hostname)."""
    with inv.client() as client:
        emit_one(inv, client.nodes.get(node_id_of(client, node)), NODE_FIELDS)


@api_command(nodes_group, "events")
@click.argument("node")
@limit_option
def nodes_events(inv: Invocation, node: str, limit: int | None) -> None:
    """Lifecycle history of NODE."""
    with inv.client() as client:
        events = client.nodes.events(node_id_of(client, node)).to_list(limit)
    emit_list(inv, events, columns("at", "from_state", "to_state", "actor", "reason"))


def _transition(inv: Invocation, node: str, to: str, reason: str) -> None:
    with inv.client() as client:
        result = client.nodes.transition(node_id_of(client, node), to, reason)
    if inv.json:
        emit_json(result)
    else:
        click.echo(f"{result.hostname}: {result.state.value}")


def _shortcut(name: str, to: NodeState, help_text: str) -> None:
    @api_command(nodes_group, name, help_text=help_text)
    @click.argument("node")
    @reason_option
    def command(inv: Invocation, node: str, reason: str) -> None:
        _transition(inv, node, to.value, reason)


_shortcut("drain", NodeState.DRAINING, "Stop placing work on NODE; running work finishes.")
_shortcut("maintenance", NodeState.MAINTENANCE, "Take NODE out of service for maintenance.")
_shortcut("available", NodeState.AVAILABLE, "Return NODE to service.")


@api_command(nodes_group, "transition")
@click.argument("node")
@click.option("--to", "to", type=NODE_STATE, required=True)
@reason_option
def nodes_transition(inv: Invocation, node: str, to: str, reason: str) -> None:
    """Move NODE to any state its lifecycle allows (e.g. retired)."""
    _transition(inv, node, to, reason)


@api_command(nodes_group, "import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "yaml"]), help="Default: extension.")
@click.option("--dry-run", is_flag=True, help="Check every row; enrol nothing.")
def nodes_import(inv: Invocation, file: Path, fmt: str | None, dry_run: bool) -> None:
    """Enrol the nodes listed in FILE (CSV or YAML): every row, or none if one is bad."""
    fmt = fmt or _format_of(file)
    content = file.read_text(encoding="utf-8")
    with inv.client() as client:
        result = client.nodes.import_file(cast(Literal["csv", "yaml"], fmt), content, dry_run)
    if inv.json:
        emit_json(result)
    elif result.dry_run:
        click.echo(f"{result.imported} node(s) would be enrolled (dry run; nothing changed)")
    else:
        click.echo(f"enrolled {result.imported} node(s)")


def _format_of(file: Path) -> str:
    suffix = file.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".yaml", ".yml"}:
        return "yaml"
    raise click.BadParameter(
        "cannot tell the format from the extension; pass --format", param_hint="FILE"
    )


@api_command(nodes_group, "summary")
def nodes_summary(inv: Invocation) -> None:
    """Nodes and GPUs per region and state."""
    with inv.client() as client:
        summary = client.nodes.summary()
    if inv.json:
        emit_json(summary)
        return
    cols: list[Column] = [
        ("REGION", _attr("region_code")),
        ("JURISDICTION", _attr("jurisdiction")),
        ("NODES", _attr("nodes")),
        ("GPUS", _attr("gpus")),
        ("BY STATE", lambda r: [f"{s.state}={s.nodes}" for s in r.by_state]),
    ]
    emit_table(summary.regions, cols)
    click.echo(f"total: {summary.total_nodes} nodes, {summary.total_gpus} GPUs")
