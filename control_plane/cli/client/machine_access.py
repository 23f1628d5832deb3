"""``cpctl tenancies power|console|kubeconfig``: reach a running tenancy. Power a VM on, off
or reboot it, open its console, and take a Kubernetes tenancy's kubeconfig.

The kubeconfig is shown once: the server deletes its copy as it hands it over. ``--out``
writes it to a new file with mode 0600 (checked before anything is revealed, so a refused
file costs nothing); ``--rotate`` invalidates every earlier kubeconfig and shows a new one.
"""

from __future__ import annotations

from pathlib import Path

import click

from control_plane.cli.client.base import (
    Invocation,
    api_command,
    emit_json,
    emit_one,
    org_id_of,
    write_secret,
)
from control_plane.cli.client.tenancies import org_option
from control_plane.sdk import Client, ConflictError
from control_plane.tenancies.drivers.base import PowerAction

CONSOLE_FIELDS = ("url", "protocol", "expires_at")
CREDENTIAL_FIELDS = ("kind", "issued_at", "expires_at", "shown", "shown_at", "rotations")


@api_command(None, "power")
@click.argument("tenancy_id")
@click.argument("action", type=click.Choice([a.value for a in PowerAction]))
@org_option
def tenancies_power(inv: Invocation, tenancy_id: str, action: str, org: str | None) -> None:
    """Start, stop or reboot the machines of VM tenancy TENANCY_ID (it must be active).

    A stopped VM keeps its GPUs, and is billed, until it is released."""
    with inv.client() as client:
        result = client.tenancies.power(
            tenancy_id, PowerAction(action), org_id=org_id_of(client, org)
        )
    emit_one(inv, result, ("tenancy_id", "action", "detail"))


@api_command(None, "console")
@click.argument("tenancy_id")
@org_option
def tenancies_console(inv: Invocation, tenancy_id: str, org: str | None) -> None:
    """A short-lived link to the console of VM tenancy TENANCY_ID (open it before it expires)."""
    with inv.client() as client:
        link = client.tenancies.console(tenancy_id, org_id=org_id_of(client, org))
    emit_one(inv, link, CONSOLE_FIELDS)


@api_command(None, "kubeconfig")
@click.argument("tenancy_id")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write it to this file (mode 0600) instead of standard output.",
)
@click.option("--force", is_flag=True, help="With --out: replace an existing file.")
@click.option(
    "--rotate", is_flag=True, help="First invalidate every earlier kubeconfig, then show a new one."
)
@click.option(
    "--status", is_flag=True, help="Only say when it was issued and whether it was shown."
)
@org_option
def tenancies_kubeconfig(
    inv: Invocation,
    tenancy_id: str,
    out: Path | None,
    force: bool,
    rotate: bool,
    status: bool,
    org: str | None,
) -> None:
    """The kubeconfig of Kubernetes tenancy TENANCY_ID, shown ONCE (then rotate for another).

    Printed to standard output (in every --output format: it is a file), or written to
    --out with mode 0600. With --status and -o json the status is JSON; with --out and
    -o json the status is printed as JSON after the file is written."""
    if status and (out is not None or rotate or force):
        raise click.UsageError("--status shows the status only: no --out, --force or --rotate")
    if force and out is None:
        raise click.UsageError("--force goes with --out FILE")
    if out is not None:
        _check_writable(out, force)
    with inv.client() as client:
        org_id = org_id_of(client, org)
        if status:
            emit_one(inv, client.tenancies.credential(tenancy_id, org_id=org_id), CREDENTIAL_FIELDS)
            return
        if rotate:
            client.tenancies.rotate_credential(tenancy_id, org_id=org_id)
        kubeconfig = _reveal(client, tenancy_id, org_id)
        if out is None:
            click.echo(kubeconfig, nl=not kubeconfig.endswith("\n"))
            click.echo(_shown_once(tenancy_id, "printed above"), err=True)
            return
        _write(out, kubeconfig, force, tenancy_id)
        click.echo(_shown_once(tenancy_id, f"written to {out} (mode 0600)"), err=True)
        if inv.json:
            emit_json(client.tenancies.credential(tenancy_id, org_id=org_id))


def _reveal(client: Client, tenancy_id: str, org_id: str) -> str:
    try:
        return client.tenancies.reveal_credential(tenancy_id, org_id=org_id)
    except ConflictError as exc:
        if "rotate" in exc.detail:
            exc.add_note(f"hint: get a new one with: cpctl tenancies kubeconfig {tenancy_id} "
                         "--rotate --out FILE")  # fmt: skip
        raise


def _shown_once(tenancy_id: str, where: str) -> str:
    return (
        f"kubeconfig of {tenancy_id} {where}. It will NOT be shown again: the server keeps no "
        f"copy. Lost it? cpctl tenancies kubeconfig {tenancy_id} --rotate (the old one then "
        "stops working)."
    )


def _check_writable(out: Path, force: bool) -> None:
    """Refuse a file we could not write before the kubeconfig is revealed (and gone)."""
    if out.exists() and not force:
        raise click.BadParameter(
            f"{out} exists; choose a new file or add --force", param_hint="--out"
        )
    if out.is_dir():
        raise click.BadParameter(f"{out} is a directory", param_hint="--out")
    if not out.parent.is_dir():
        raise click.BadParameter(f"{out.parent} is not a directory", param_hint="--out")


def _write(out: Path, kubeconfig: str, force: bool, tenancy_id: str) -> None:
    try:
        write_secret(out, kubeconfig if kubeconfig.endswith("\n") else kubeconfig + "\n",
                     replace=force)  # fmt: skip
    except OSError as exc:
        # Not printed instead: a secret on a terminal nobody asked for is worse than a rotation.
        raise click.ClickException(
            f"the kubeconfig was revealed but could not be written to {out} ({exc.strerror}); "
            f"get a new one with: cpctl tenancies kubeconfig {tenancy_id} --rotate --out FILE"
        ) from exc


# Joined to ``cpctl tenancies`` by :func:`control_plane.cli.client.register`.
TENANCY_COMMANDS = (tenancies_power, tenancies_console, tenancies_kubeconfig)
