"""``cpctl pools``: set nodes aside in a pool and lend it to organizations by weekly windows
(operators); see the windows lent to your organization (tenants).

A pool is named by its id or its name within the region.
"""

from __future__ import annotations

from typing import cast, get_args

import click

from control_plane.cli.client.base import (
    Invocation,
    api_command,
    columns,
    emit_json,
    emit_list,
    emit_one,
    emit_table,
    org_id_of,
)
from control_plane.pools.schemas import Day, PoolRead
from control_plane.sdk import Client
from control_plane.sdk.errors import SdkError

DAYS: tuple[Day, ...] = get_args(Day)
POOL_COLUMNS = [
    *columns("id", "region", "name", "timezone", "drain_minutes"),
    ("NODES", lambda p: len(p.nodes)),
    ("GPUS", lambda p: sum(n.gpu_count for n in p.nodes)),
    ("WINDOWS", lambda p: len(p.windows)),
    ("OPEN TO", lambda p: p.open_to or "-"),
]
WINDOW_COLUMNS = [
    *columns("id", "org_id", "project_id"),
    ("DAYS", lambda w: ",".join(w.days)),
    *columns("start", "end"),
]
OPENING_COLUMNS = [*columns("start", "end", "drain_from", "org_id", "project_id")]


@click.group("pools")
def pools_group() -> None:
    """Pools: nodes lent to organizations by weekly time windows."""


def _pool_id(client: Client, region: str, ref: str) -> str:
    if ref.startswith("pool_"):
        return ref
    for pool in client.pools.list(region):
        if pool.name == ref:
            return pool.id
    raise SdkError(f"no pool named {ref!r} in {region}")


def _days(value: str) -> list[Day]:
    days = [d.strip().lower() for d in value.split(",") if d.strip()]
    if value.strip().lower() in {"daily", "all"}:
        return list(DAYS)
    if value.strip().lower() == "weekdays":
        return list(DAYS[:5])
    if not days or any(d not in DAYS for d in days):
        raise click.BadParameter("comma-separated mon..sun, weekdays or daily", param_hint="--days")
    return [cast(Day, d) for d in days]


def _show(inv: Invocation, pool: PoolRead) -> None:
    if inv.json:
        emit_json(pool)
        return
    emit_one(inv, pool, ("id", "region", "name", "description", "timezone", "drain_minutes",
                         "open_to"))  # fmt: skip
    click.echo(f"{'nodes':<13}  {', '.join(n.hostname for n in pool.nodes) or '(none)'}")
    if pool.windows:
        click.echo("")
        emit_table(pool.windows, WINDOW_COLUMNS)


@api_command(pools_group, "list")
@click.option("--region", required=True, help="Region code.")
def pools_list(inv: Invocation, region: str) -> None:
    """The pools of a region (operators)."""
    with inv.client() as client:
        emit_list(inv, client.pools.list(region), POOL_COLUMNS)


@api_command(pools_group, "mine")
@click.option("--org", "org", metavar="ORG", help="Id or slug (default: current).")
def pools_mine(inv: Invocation, org: str | None) -> None:
    """The pools lent to your organization and its openings this week."""
    with inv.client() as client:
        pools = client.pools.mine(org_id_of(client, org))
    if inv.json:
        emit_json(pools)
        return
    if not pools:
        click.echo("(none)", err=True)
    for pool in pools:
        click.echo(f"{pool.name} ({pool.region}, {pool.gpus} x {pool.gpu_model})")
        emit_table(pool.openings, [*columns("start", "end", "drain_from", "open_now")])


@api_command(pools_group, "create")
@click.argument("region")
@click.argument("name")
@click.option("--timezone", required=True, help="IANA zone of the windows, e.g. America/Toronto.")
@click.option("--drain-minutes", type=click.IntRange(0, 720), default=30, show_default=True)
@click.option("--description", default="")
def pools_create(
    inv: Invocation, region: str, name: str, timezone: str, drain_minutes: int, description: str
) -> None:
    """Create pool NAME in REGION, with no nodes yet (operator-admins)."""
    with inv.client() as client:
        pool = client.pools.create(region, name, timezone, drain_minutes=drain_minutes,
                                   description=description)  # fmt: skip
    _show(inv, pool)


@api_command(pools_group, "show")
@click.argument("region")
@click.argument("pool")
def pools_show(inv: Invocation, region: str, pool: str) -> None:
    """A pool with its nodes and windows."""
    with inv.client() as client:
        found = client.pools.get(region, _pool_id(client, region, pool))
    _show(inv, found)


@api_command(pools_group, "set-nodes")
@click.argument("region")
@click.argument("pool")
@click.argument("node_ids", nargs=-1)
def pools_set_nodes(inv: Invocation, region: str, pool: str, node_ids: tuple[str, ...]) -> None:
    """Make NODE_IDS the pool's nodes (none given: empty it)."""
    with inv.client() as client:
        found = client.pools.set_nodes(region, _pool_id(client, region, pool), node_ids)
    _show(inv, found)


@api_command(pools_group, "add-window")
@click.argument("region")
@click.argument("pool")
@click.option("--org", "org", required=True, help="Organization id or slug.")
@click.option("--project", help="Only this project of the organization.")
@click.option("--days", required=True, help="mon,tue,... or weekdays or daily.")
@click.option("--start", required=True, help="Local HH:MM.")
@click.option("--end", required=True, help="Local HH:MM (at or before --start: next day).")
def pools_add_window(
    inv: Invocation, region: str, pool: str, org: str, project: str | None, days: str,
    start: str, end: str,
) -> None:  # fmt: skip
    """Lend the pool to an organization on a weekly window (operator-admins)."""
    with inv.client() as client:
        window = client.pools.add_window(region, _pool_id(client, region, pool), org,
                                         _days(days), start, end, project_id=project)  # fmt: skip
    if inv.json:
        emit_json(window)
    else:
        emit_table([window], WINDOW_COLUMNS)


@api_command(pools_group, "remove-window")
@click.argument("region")
@click.argument("pool")
@click.argument("window_id")
def pools_remove_window(inv: Invocation, region: str, pool: str, window_id: str) -> None:
    """Remove a window (tenancies placed in it keep their lease end)."""
    with inv.client() as client:
        client.pools.remove_window(region, _pool_id(client, region, pool), window_id)
    click.echo(f"removed window {window_id}", err=inv.json)


@api_command(pools_group, "schedule")
@click.argument("region")
@click.argument("pool")
@click.option("--days", type=click.IntRange(1, 31), default=7, show_default=True)
def pools_schedule(inv: Invocation, region: str, pool: str, days: int) -> None:
    """The pool's concrete openings over the coming days (UTC)."""
    with inv.client() as client:
        openings = client.pools.schedule(region, _pool_id(client, region, pool), days)
    emit_list(inv, openings, OPENING_COLUMNS)


@api_command(pools_group, "delete")
@click.argument("region")
@click.argument("pool")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def pools_delete(inv: Invocation, region: str, pool: str, yes: bool) -> None:
    """Delete a pool: its nodes go back to everyone (operator-admins)."""
    if not yes:
        click.confirm(f"Delete pool {pool} in {region}?", abort=True, err=True)
    with inv.client() as client:
        client.pools.delete(region, _pool_id(client, region, pool))
    click.echo(f"deleted pool {pool} in {region}", err=inv.json)
