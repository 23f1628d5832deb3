"""``cpctl`` secrets and keys: store secrets (values go in, never come out), list and rotate
the organization's data keys, rotate a region's key-encryption key."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from control_plane.cli.client.base import (
    Invocation,
    api_command,
    columns,
    emit_list,
    emit_one,
    limit_option,
    org_id_of,
)
from control_plane.errors import ProblemError
from control_plane.sovereignty.keys.models import SecretKind
from control_plane.sovereignty.keys.schemas import MAX_SECRET_BYTES

org_option = click.option("--org", "org", metavar="ORG", help="Id or slug (default: current).")
SECRET_FIELDS = (
    "id",
    "name",
    "kind",
    "region",
    "description",
    "data_key_version",
    "created_at",
    "rotated_at",
)
KEY_FIELDS = ("region", "version", "state", "kek_id", "kek_version", "created_at", "retired_at")


@click.group("secrets")
def secrets_group() -> None:
    """Secrets of an organization (values are write-only)."""


@api_command(secrets_group, "list")
@org_option
@limit_option
def secrets_list(inv: Invocation, org: str | None, limit: int | None) -> None:
    """Secrets of the organization: names and metadata, never values."""
    with inv.client() as client:
        secrets = client.secrets.list(org_id_of(client, org)).to_list(limit)
    emit_list(inv, secrets, columns("id", "name", "kind", "data_key_version", "rotated_at"))


@api_command(secrets_group, "set")
@click.argument("name")
@click.option("--kind", type=click.Choice([k.value for k in SecretKind]), required=True)
@click.option(
    "--value-file",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File holding the value ('-' reads standard input); never pass values as arguments.",
)
@click.option("--description", help="What the secret is for.")
@org_option
def secrets_set(
    inv: Invocation,
    name: str,
    kind: str,
    value_file: str,
    description: str | None,
    org: str | None,
) -> None:
    """Store NAME, or replace its value if it exists."""
    value = _read_value(value_file)
    with inv.client() as client:
        secret = client.secrets.set(
            org_id_of(client, org), name, kind, value, description=description
        )
    emit_one(inv, secret, SECRET_FIELDS)


@api_command(secrets_group, "delete")
@click.argument("secret")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@org_option
def secrets_delete(inv: Invocation, secret: str, yes: bool, org: str | None) -> None:
    """Delete SECRET (a name or an id)."""
    with inv.client() as client:
        org_id = org_id_of(client, org)
        found = client.secrets.find(org_id, secret)
        secret_id = found.id if found else secret
        if not yes:
            click.confirm(f"Delete secret {secret}? What uses it stops working.", abort=True)
        client.secrets.delete(org_id, secret_id)
    click.echo(f"deleted secret {secret}", err=inv.json)


@click.group("keys")
def keys_group() -> None:
    """Data keys of an organization; key-encryption keys of a region (operator-admins)."""


@api_command(keys_group, "list")
@org_option
@limit_option
def keys_list(inv: Invocation, org: str | None, limit: int | None) -> None:
    """Data key versions, newest first."""
    with inv.client() as client:
        keys = client.keys.list(org_id_of(client, org)).to_list(limit)
    emit_list(inv, keys, columns(*KEY_FIELDS))


@api_command(keys_group, "rotate")
@org_option
def keys_rotate(inv: Invocation, org: str | None) -> None:
    """Make a new data key version for new writes (older versions keep decrypting)."""
    with inv.client() as client:
        key = client.keys.rotate(org_id_of(client, org))
    emit_one(inv, key, KEY_FIELDS)


@api_command(keys_group, "rotate-kek")
@click.option("--region", help="Region code (default with --local: CP_REGION).")
@click.option(
    "--local",
    is_flag=True,
    help="Run here against CP_DATABASE_URL and CP_KEY_DIR instead of through the API.",
)
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=200, show_default=True)
def keys_rotate_kek(inv: Invocation, region: str | None, local: bool, batch_size: int) -> None:
    """Rotate a region's key-encryption key and re-wrap every data key under it.

    Through the API it needs an operator-admin session (cpctl login). With --local it runs
    on a host of the region that holds its key directory and database credentials.
    """
    fields = ("region", "kek_id", "kek_version", "rewrapped", "remaining")
    if local:
        from control_plane.settings import Settings
        from control_plane.sovereignty.keys.rotation import rotate_kek_here

        try:
            done = asyncio.run(rotate_kek_here(Settings(), region=region, batch_size=batch_size))
        except ProblemError as problem:
            raise click.ClickException(problem.detail) from problem
        emit_one(inv, done, fields)
        return
    if region is None:
        raise click.UsageError("--region is required (or use --local)")
    with inv.client() as client:
        emit_one(inv, client.keys.rotate_kek(region), fields)


def _read_value(path: str) -> bytes:
    raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    if not raw:
        raise click.BadParameter("the value file is empty", param_hint="--value-file")
    if len(raw) > MAX_SECRET_BYTES:
        raise click.BadParameter(
            f"the value is over {MAX_SECRET_BYTES // 1024} KiB", param_hint="--value-file"
        )
    return raw


@click.group("provider-secrets")
def provider_secrets_group() -> None:
    """The provider's own secrets, e.g. BMC credentials bmc/<hostname> (operator-admins)."""


@api_command(provider_secrets_group, "list")
@limit_option
def provider_secrets_list(inv: Invocation, limit: int | None) -> None:
    """Provider secrets: names and metadata, never values."""
    with inv.client() as client:
        secrets = client.provider_secrets.list().to_list(limit)
    emit_list(inv, secrets, columns("id", "name", "kind", "region", "rotated_at"))


@api_command(provider_secrets_group, "set")
@click.argument("name")
@click.option("--kind", type=click.Choice([k.value for k in SecretKind]), required=True)
@click.option(
    "--value-file",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File holding the value ('-' reads standard input); never pass values as arguments.",
)
@click.option("--description", help="What the secret is for.")
def provider_secrets_set(
    inv: Invocation, name: str, kind: str, value_file: str, description: str | None
) -> None:
    """Store NAME (e.g. bmc/gpu-017 holding {"username": ..., "password": ...})."""
    value = _read_value(value_file)
    with inv.client() as client:
        secret = client.provider_secrets.set(name, kind, value, description=description)
    emit_one(inv, secret, SECRET_FIELDS)


@api_command(provider_secrets_group, "delete")
@click.argument("secret")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def provider_secrets_delete(inv: Invocation, secret: str, yes: bool) -> None:
    """Delete SECRET (a name or an id)."""
    with inv.client() as client:
        found = client.provider_secrets.find(secret)
        if not yes:
            click.confirm(f"Delete provider secret {secret}?", abort=True)
        client.provider_secrets.delete(found.id if found else secret)
    click.echo(f"deleted provider secret {secret}", err=inv.json)
