"""``cpctl tenancies``, ``cpctl shapes`` and ``cpctl quotas``: rent GPU capacity, follow it
to active, resize, schedule and release it; see the shapes on offer and the quotas that bind.

``--wait`` follows a tenancy's timeline on standard error while the result (table or JSON)
still goes to standard output, so ``-o json`` output stays machine-readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal, cast

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
from control_plane.tenancies.drivers.base import TenancyKind
from control_plane.tenancies.lifecycle import TenancyState
from control_plane.tenancies.schemas import ShapeRead, TenancyEventRead, TenancyRead, Workspace

KIND = click.Choice([k.value for k in TenancyKind])
STATE = click.Choice([s.value for s in TenancyState])
TENANCY_FIELDS = (
    "id",
    "name",
    "kind",
    "region",
    "gpu_model",
    "shape",
    "gpus_per_node",
    "node_count",
    "gpu_count",
    "state",
    "failure_reason",
    "simulated",
    "driver",
    "image",
    "ends_at",
    "idle_release_minutes",
    "pending_resize",
    "created_by",
    "created_at",
    "activated_at",
    "released_at",
)
DEFAULT_TIMEOUT = 600.0
org_option = click.option("--org", "org", metavar="ORG", help="Id or slug (default: current).")
wait_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds --wait waits before giving up.",
)


@click.group("tenancies")
def tenancies_group() -> None:
    """GPU tenancies of an organization: create, follow, resize, release."""


@api_command(tenancies_group, "create")
@click.argument("name")
@click.option("--kind", type=KIND, required=True, help="What you get on the GPUs.")
@click.option(
    "--region", default="any", show_default=True, help="Region code, or 'any' region allowed."
)
@click.option("--shape", help="A shape offered in the region (see: cpctl shapes list).")
@click.option("--gpu-model", help="Without --shape: the GPU model (e.g. h100).")
@click.option(
    "--gpu-class",
    help="Without --shape, instead of --gpu-model: a GPU generation (hopper, ampere ...).",
)
@click.option("--gpus-per-node", type=click.IntRange(1, 64), help="Without --shape.")
@click.option("--nodes", "node_count", type=click.IntRange(1, 64), help="Without --shape.")
@click.option("--ends-at", help="Release automatically then (ISO 8601 with a zone, e.g. ...Z).")
@click.option(
    "--idle-release-minutes",
    type=click.IntRange(5, 10_080),
    help="Release once no workload has run for this long.",
)
@click.option("--image", help="Operating-system image (bare metal), e.g. ubuntu-24.04.")
@click.option(
    "--ssh-key-file",
    "ssh_key_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="OpenSSH public key file (repeatable; one key per line).",
)
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option("--project", help="Project id the tenancy belongs to.")
@click.option(
    "--workspace",
    type=click.Choice(["jupyter"]),
    help="Kubernetes only: also run a Jupyter server on the GPUs.",
)
@click.option(
    "--idle-minutes",
    "workspace_idle",
    type=click.IntRange(5, 1440),
    help="With --workspace: stop it after this long without activity (default 60).",
)
@click.option("--wait", "wait_", is_flag=True, help="Wait until it is active, showing progress.")
@wait_timeout_option
@org_option
def tenancies_create(
    inv: Invocation,
    name: str,
    kind: str,
    region: str,
    shape: str | None,
    gpu_model: str | None,
    gpu_class: str | None,
    gpus_per_node: int | None,
    node_count: int | None,
    ends_at: str | None,
    idle_release_minutes: int | None,
    image: str | None,
    ssh_key_files: Sequence[Path],
    labels: Sequence[str],
    project: str | None,
    workspace: str | None,
    workspace_idle: int | None,
    wait_: bool,
    timeout: float,
    org: str | None,
) -> None:
    """Create tenancy NAME from a --shape, or from --gpu-model (or --gpu-class) and
    --gpus-per-node."""
    if shape is None and ((gpu_model is None and gpu_class is None) or gpus_per_node is None):
        raise click.UsageError("give --shape, or --gpu-model (or --gpu-class) and --gpus-per-node")
    if workspace_idle is not None and workspace is None:
        raise click.UsageError("--idle-minutes goes with --workspace jupyter")
    with inv.client() as client:
        org_id = org_id_of(client, org)
        tenancy = client.tenancies.create(
            name,
            kind,
            region,
            shape=shape,
            gpu_model=gpu_model,
            gpu_class=gpu_class,
            gpus_per_node=gpus_per_node,
            node_count=node_count,
            ends_at=_when(ends_at),
            idle_release_minutes=idle_release_minutes,
            image=image,
            ssh_public_keys=_ssh_keys(ssh_key_files),
            labels=_labels(labels),
            project_id=project,
            workspace=_workspace(workspace, workspace_idle),
            org_id=org_id,
        )
        if wait_:
            _started(tenancy)
            tenancy = _wait(client, org_id, tenancy.id, "active", timeout)
    show_tenancy(inv, tenancy)


@api_command(tenancies_group, "list")
@click.option("--state", type=STATE)
@click.option("--kind", type=KIND)
@click.option("--region")
@limit_option
@org_option
def tenancies_list(
    inv: Invocation,
    state: str | None,
    kind: str | None,
    region: str | None,
    limit: int | None,
    org: str | None,
) -> None:
    """Tenancies, newest first."""
    with inv.client() as client:
        items = client.tenancies.list(
            state=state, kind=kind, region=region, org_id=org_id_of(client, org)
        ).to_list(limit)
    cols = columns("id", "name", "kind", "region", "gpu_model", "gpu_count", "state")
    cols.append(("SIMULATED", lambda t: t.simulated))
    emit_list(inv, items, cols)


@api_command(tenancies_group, "get")
@click.argument("tenancy_id")
@org_option
def tenancies_get(inv: Invocation, tenancy_id: str, org: str | None) -> None:
    """Show TENANCY_ID: state, size, where it runs and how to reach it."""
    with inv.client() as client:
        tenancy = client.tenancies.get(tenancy_id, org_id=org_id_of(client, org))
    show_tenancy(inv, tenancy)


@api_command(tenancies_group, "events")
@click.argument("tenancy_id")
@limit_option
@org_option
def tenancies_events(inv: Invocation, tenancy_id: str, limit: int | None, org: str | None) -> None:
    """The timeline of TENANCY_ID, oldest first."""
    with inv.client() as client:
        events = client.tenancies.events(tenancy_id, org_id=org_id_of(client, org)).to_list(limit)
    cols = columns("at", "kind")
    cols.append(("STATE", lambda e: e.to_state or ""))
    cols.extend(columns("actor", "detail"))
    emit_list(inv, events, cols)


@api_command(tenancies_group, "resize")
@click.argument("tenancy_id")
@click.option("--gpus-per-node", type=click.IntRange(1, 64), required=True)
@click.option("--nodes", "node_count", type=click.IntRange(1, 64), help="Default: unchanged.")
@click.option("--gpu-model", help="Move to another GPU model of the region (e.g. l40s).")
@click.option(
    "--gpu-milli",
    type=click.IntRange(1, 1000),
    help="Thousandths of each GPU (e.g. 500 for half of each); default: unchanged.",
)
@click.option("--wait", "wait_", is_flag=True, help="Wait until the new size is applied.")
@wait_timeout_option
@org_option
def tenancies_resize(
    inv: Invocation,
    tenancy_id: str,
    gpus_per_node: int,
    node_count: int | None,
    gpu_model: str | None,
    gpu_milli: int | None,
    wait_: bool,
    timeout: float,
    org: str | None,
) -> None:
    """Change the GPUs of an active tenancy (bare metal cannot be resized in place)."""
    with inv.client() as client:
        org_id = org_id_of(client, org)
        before = _event_ids(client, org_id, tenancy_id) if wait_ else set()
        tenancy = client.tenancies.resize(
            tenancy_id, gpus_per_node, node_count, gpu_model=gpu_model, gpu_milli=gpu_milli,
            org_id=org_id,
        )  # fmt: skip
        if wait_:
            tenancy = _wait(client, org_id, tenancy_id, "active", timeout, before)
    show_tenancy(inv, tenancy)


@api_command(tenancies_group, "schedule")
@click.argument("tenancy_id")
@click.option(
    "--idle-release-minutes",
    type=click.IntRange(5, 10_080),
    help="Release once no workload has run for this long.",
)
@click.option("--off", is_flag=True, help="Never release by itself when idle.")
@org_option
def tenancies_schedule(
    inv: Invocation, tenancy_id: str, idle_release_minutes: int | None, off: bool,
    org: str | None,
) -> None:  # fmt: skip
    """Make TENANCY_ID give its GPUs back by itself after --idle-release-minutes without a
    workload, or never (--off)."""
    if off == (idle_release_minutes is not None):
        raise click.UsageError("give either --idle-release-minutes N or --off")
    with inv.client() as client:
        tenancy = client.tenancies.schedule(
            tenancy_id, idle_release_minutes, org_id=org_id_of(client, org)
        )
    show_tenancy(inv, tenancy)


@api_command(tenancies_group, "release")
@click.argument("tenancy_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait", "wait_", is_flag=True, help="Wait until it is released, showing progress.")
@wait_timeout_option
@org_option
def tenancies_release(
    inv: Invocation, tenancy_id: str, yes: bool, wait_: bool, timeout: float, org: str | None
) -> None:
    """Give TENANCY_ID back: workloads stop, the machines are cleaned, the GPUs return."""
    if not yes:
        click.confirm(f"Release {tenancy_id}? Everything on it is wiped.", abort=True, err=True)
    with inv.client() as client:
        org_id = org_id_of(client, org)
        before = _event_ids(client, org_id, tenancy_id) if wait_ else set()
        tenancy = client.tenancies.release(tenancy_id, org_id=org_id)
        if wait_:
            tenancy = _wait(client, org_id, tenancy_id, "released", timeout, before)
    show_tenancy(inv, tenancy)


@api_command(tenancies_group, "wait")
@click.argument("tenancy_id")
@click.option("--state", type=STATE, default="active", show_default=True)
@wait_timeout_option
@org_option
def tenancies_wait(
    inv: Invocation, tenancy_id: str, state: str, timeout: float, org: str | None
) -> None:
    """Wait until TENANCY_ID is in --state, showing its timeline as it moves."""
    with inv.client() as client:
        tenancy = _wait(client, org_id_of(client, org), tenancy_id, state, timeout)
    show_tenancy(inv, tenancy)


def show_tenancy(inv: Invocation, tenancy: TenancyRead) -> None:
    """The tenancy's fields, then its labels, access facts and allocations (tables only)."""
    emit_one(inv, tenancy, TENANCY_FIELDS)
    if inv.json:
        return
    width = max(map(len, TENANCY_FIELDS))
    for key, value in sorted(tenancy.labels.items()):
        click.echo(f"{'label':<{width}}  {key}={value}")
    if tenancy.workspace is not None:
        click.echo(f"{'workspace':<{width}}  {tenancy.workspace.preset}, stops after "
                   f"{tenancy.workspace.idle_minutes} idle minutes")  # fmt: skip
    for key, value in sorted(tenancy.facts.items()):
        click.echo(f"{'fact':<{width}}  {key}: {value}")
    for node in tenancy.allocations:
        gpus = ",".join(map(str, node.gpu_indices))
        share = "" if node.gpu_milli == 1000 else f" ({node.gpu_milli / 10:g}% each)"
        click.echo(f"{'allocation':<{width}}  {node.hostname}: GPUs {gpus}{share}")


def _started(tenancy: TenancyRead) -> None:
    click.echo(
        f"created {tenancy.id}: {tenancy.gpu_count} x {tenancy.gpu_model} in {tenancy.region}"
        + (" (simulated)" if tenancy.simulated else ""),
        err=True,
    )


def _wait(
    client: Client,
    org_id: str,
    tenancy_id: str,
    state: str,
    timeout: float,
    shown: set[str] | None = None,
) -> TenancyRead:
    """Wait for ``state``, printing each timeline event not in ``shown`` to stderr."""
    shown = set(shown or ())

    def progress(tenancy: TenancyRead, events: Sequence[TenancyEventRead]) -> None:
        for event in events:
            if event.id in shown:
                continue
            shown.add(event.id)
            what = event.to_state or event.kind
            click.echo(f"  {event.at:%H:%M:%S}  {what:<12}  {event.detail}", err=True)

    click.echo(f"waiting for {tenancy_id} to be {state} (up to {timeout:g} s)", err=True)
    return client.tenancies.wait(tenancy_id, state, timeout, org_id=org_id, on_progress=progress)


def _event_ids(client: Client, org_id: str, tenancy_id: str) -> set[str]:
    """The events already on the timeline (so --wait shows only what the command caused)."""
    return {e.id for e in client.tenancies.events(tenancy_id, org_id=org_id)}


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(
            "use ISO 8601, e.g. 2026-12-01T18:00:00Z", param_hint="--ends-at"
        ) from exc
    if when.tzinfo is None:
        raise click.BadParameter(
            "give a time zone, e.g. a trailing Z for UTC", param_hint="--ends-at"
        )
    return when


def _workspace(preset: str | None, idle_minutes: int | None) -> Workspace | None:
    if preset is None:
        return None
    if idle_minutes is None:
        return Workspace(preset="jupyter")
    return Workspace(preset="jupyter", idle_minutes=idle_minutes)


def _labels(pairs: Sequence[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = value
    return labels


def _ssh_keys(files: Sequence[Path]) -> list[str]:
    keys: list[str] = []
    for file in files:
        lines = file.read_text(encoding="utf-8").splitlines()
        keys.extend(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    return keys


# ---------------------------------------------------------------- shapes


@click.group("shapes")
def shapes_group() -> None:
    """Shapes on offer per region, and the cheapest one for a workload."""


SHAPE_COLUMNS = [
    *columns("region", "name", "gpu_model"),
    ("GPUS", lambda s: _shape_gpus(s)),
    ("GIB/GPU", lambda s: s.gpu_memory_gib),
    *columns("interconnect"),
    ("PRICE/H", lambda s: f"{money(s.hourly_price)} {s.currency}"),
]


def _shape_gpus(shape: ShapeRead) -> str:
    size = str(shape.gpus_per_node)
    if shape.node_count > 1:
        size = f"{shape.node_count} nodes x {shape.gpus_per_node}"
    return size if shape.gpu_milli == 1000 else f"{shape.gpu_milli / 10:g}% of 1"


def money(value: Decimal) -> str:
    """Cents when that is exact (7.40), every digit otherwise (0.0125)."""
    cents = value.quantize(Decimal("0.01"))
    return f"{cents:f}" if cents == value else f"{value.normalize():f}"


@api_command(shapes_group, "list")
@click.option("--region", help="Region code (default: every region).")
def shapes_list(inv: Invocation, region: str | None) -> None:
    """Shapes with their GPUs and price per hour, cheapest first in each region."""
    with inv.client() as client:
        regions = [region] if region else [r.code for r in client.regions.list()]
        shapes = [shape for code in regions for shape in client.shapes.list(code)]
    emit_list(inv, shapes, SHAPE_COLUMNS)


@api_command(shapes_group, "suggest")
@click.option("--gpu-memory-gib", type=click.IntRange(1, 100_000), required=True)
@click.option("--gpus", "gpu_count", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option(
    "--interconnect", type=click.Choice(["any", "nvlink"]), default="any", show_default=True
)
@click.option("--region", default="any", show_default=True, help="Region code or 'any'.")
@org_option
def shapes_suggest(
    inv: Invocation,
    gpu_memory_gib: int,
    gpu_count: int,
    interconnect: str,
    region: str,
    org: str | None,
) -> None:
    """The cheapest shape, in a region your policy allows, that fits a workload needing
    --gpus GPUs with --gpu-memory-gib GiB of GPU memory in total."""
    with inv.client() as client:
        suggestion = client.tenancies.suggest_shape(
            gpu_memory_gib, gpu_count, interconnect, region, org_id=org_id_of(client, org)
        )
    if inv.json:
        emit_json(suggestion)
        return
    click.echo(suggestion.reason)
    rows = [s for s in (suggestion.shape, *suggestion.alternatives) if s is not None]
    if rows:
        emit_table(rows, SHAPE_COLUMNS)


@api_command(shapes_group, "create")
@click.argument("region")
@click.argument("name")
@click.option("--gpu-model", required=True)
@click.option("--gpus-per-node", type=click.IntRange(1, 64), required=True)
@click.option("--nodes", "node_count", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--price", required=True, help="Per hour of the whole shape, region's currency.")
@click.option(
    "--interconnect", type=click.Choice(["pcie", "nvlink"]), default="pcie", show_default=True
)
@click.option("--gpu-milli", type=click.IntRange(1, 1000), default=1000, show_default=True)
@click.option("--description", default="")
def shapes_create(
    inv: Invocation,
    region: str,
    name: str,
    gpu_model: str,
    gpus_per_node: int,
    node_count: int,
    price: str,
    interconnect: str,
    gpu_milli: int,
    description: str,
) -> None:
    """Offer shape NAME in REGION (operator-admins; sign in with cpctl login)."""
    try:
        hourly = Decimal(price)
    except ArithmeticError as exc:
        raise click.BadParameter("a decimal number, e.g. 3.20", param_hint="--price") from exc
    with inv.client() as client:
        shape = client.shapes.create(
            region, name, gpu_model, gpus_per_node, hourly, node_count=node_count,
            gpu_milli=gpu_milli, interconnect=cast(Literal["nvlink", "pcie"], interconnect),
            description=description,
        )  # fmt: skip
    if inv.json:
        emit_json(shape)
    else:
        emit_table([shape], SHAPE_COLUMNS)


@api_command(shapes_group, "delete")
@click.argument("region")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def shapes_delete(inv: Invocation, region: str, name: str, yes: bool) -> None:
    """Stop offering shape NAME in REGION (operator-admins)."""
    if not yes:
        click.confirm(f"Stop offering {name} in {region}?", abort=True, err=True)
    with inv.client() as client:
        client.shapes.delete(region, name)
    click.echo(f"deleted shape {name} in {region}", err=inv.json)


# ---------------------------------------------------------------- quotas


@click.group("quotas")
def quotas_group() -> None:
    """GPU quotas: what your organization may hold; defaults and overrides (operators)."""


QUOTA_COLUMNS = [
    ("APPLIES TO", lambda q: "default" if q.org_id == "*" else q.org_id),
    *columns("region", "gpu_model", "max_gpus", "in_use"),
]


@api_command(quotas_group, "show")
@org_option
def quotas_show(inv: Invocation, org: str | None) -> None:
    """The quotas that bind your organization, and the GPUs it holds under each."""
    with inv.client() as client:
        quotas = client.tenancies.quotas(org_id_of(client, org))
    if not quotas and not inv.json:
        click.echo("no GPU quota applies: only free capacity limits you", err=True)
        return
    emit_list(inv, quotas, QUOTA_COLUMNS)


@api_command(quotas_group, "rules")
def quotas_rules(inv: Invocation) -> None:
    """Every quota rule: defaults (*) and per-organization overrides (operators)."""
    with inv.client() as client:
        rules = client.quotas.rules()
    emit_list(inv, rules, QUOTA_COLUMNS[:-1])


@api_command(quotas_group, "set")
@click.option("--max-gpus", type=click.IntRange(0, 100_000), required=True)
@click.option("--org", "org", default="*", show_default=True, help="Organization id, or *.")
@click.option("--region", default="*", show_default=True)
@click.option("--gpu-model", default="*", show_default=True)
def quotas_set(inv: Invocation, max_gpus: int, org: str, region: str, gpu_model: str) -> None:
    """Set a default (--org '*') or per-organization GPU quota (operator-admins)."""
    with inv.client() as client:
        rule = client.quotas.set(max_gpus, org_id=org, region=region, gpu_model=gpu_model)
    if inv.json:
        emit_json(rule)
    else:
        emit_table([rule], QUOTA_COLUMNS[:-1])
