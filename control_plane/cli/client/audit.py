"""``cpctl audit``: browse and export the ledger through the API; verify bundles offline.

``verify`` needs no profile, no network and no database: an auditor runs it on their own
machine against a bundle directory (and, ideally, keys fetched separately with
``cpctl audit keys --out keys.json``).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from control_plane.cli.client.base import (
    Invocation,
    api_command,
    columns,
    emit_json,
    emit_list,
    org_id_of,
)

TIME = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"])


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit ledger: entries, export bundles, offline verification."""


@api_command(audit_group, "entries")
@click.option("--org", "org_ref", help="Organization id or slug (default: your current one).")
@click.option("--action", help="Action or prefix, e.g. identity. or identity.create_project.")
@click.option("--outcome", help="success, denied, rejected or failed.")
@click.option("--since", type=TIME)
@click.option("--until", type=TIME)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
def audit_entries(
    inv: Invocation,
    org_ref: str | None,
    action: str | None,
    outcome: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> None:
    """Ledger entries of an organization, newest first."""
    with inv.client() as client:
        org_id = org_id_of(client, org_ref)
        pages = client.audit.entries(
            org_id, action=action, outcome=outcome, since=_utc(since), until=_utc(until)
        )
        items = []
        for entry in pages:
            items.append(entry)
            if len(items) >= limit:
                break
    cols = columns("seq", "at", "action", "outcome")
    cols[2:2] = [("ACTOR", lambda e: f"{e.actor.kind}:{e.actor.id or '-'}")]
    cols.append(("TARGET", lambda e: f"{e.target.type or '-'}:{e.target.id or '-'}"))
    emit_list(inv, items, cols)


@api_command(audit_group, "export")
@click.option("--org", "org_ref", required=True, help="Organization id or slug.")
@click.option("--since", type=TIME, help="First moment included (UTC unless an offset is given).")
@click.option("--until", type=TIME, help="Last moment included.")
@click.option(
    "--destination",
    metavar="CC",
    help="Jurisdiction the bundle goes to (ISO code, e.g. CA); your residency policy decides.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def audit_export(
    inv: Invocation,
    org_ref: str,
    since: datetime | None,
    until: datetime | None,
    destination: str | None,
    out_dir: Path,
) -> None:
    """Download an organization's bundle into OUT (entries, checkpoints, manifest)."""
    from control_plane.sdk.audit import extract_bundle

    if out_dir.exists() and any(out_dir.iterdir()):
        raise click.UsageError(f"{out_dir} is not empty")
    with inv.client() as client:
        org_id = org_id_of(client, org_ref)
        content = client.audit.export(
            org_id, since=_utc(since), until=_utc(until), destination=destination
        )
    extract_bundle(content, out_dir)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    count = sum(c["last_seq"] - c["first_seq"] + 1 for c in manifest["chains"].values())
    if inv.json:
        emit_json({"out": str(out_dir), "entries": count, "manifest": manifest})
    else:
        click.echo(
            f"wrote {count} entries to {out_dir}; check it with: cpctl audit verify {out_dir}"
        )


@api_command(audit_group, "keys")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path))
def audit_keys(inv: Invocation, out_file: Path | None) -> None:
    """The region's checkpoint-signing public keys (save them to verify bundles against)."""
    with inv.client() as client:
        keys = client.audit.keys()
    if out_file is not None:
        import msgspec

        out_file.write_bytes(msgspec.json.format(msgspec.json.encode(keys)) + b"\n")
        click.echo(f"wrote {len(keys.keys)} keys of {keys.region} to {out_file}")
        return
    emit_list(inv, keys.keys, columns("key_id", "region", "not_before", "not_after"))


@audit_group.command("verify")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--keys",
    "keys_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trusted public keys (from `cpctl audit keys --out`); default: the bundle's own.",
)
def audit_verify(bundle: Path, keys_file: Path | None) -> None:
    """Check BUNDLE offline. Exit 0 when intact; 1 naming the first bad entry otherwise."""
    from control_plane.audit.bundle import verify_bundle
    from control_plane.audit.signing import PublicKeyRecord

    trusted = None
    if keys_file is not None:
        try:
            trusted = [
                PublicKeyRecord.from_dict(k) for k in json.loads(keys_file.read_text())["keys"]
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise click.UsageError(f"{keys_file}: not a key list ({exc})") from exc
    result = verify_bundle(bundle, trusted_keys=trusted)
    if result.ok:
        click.echo(f"OK: {result.message}")
        return
    where = (
        f" (first bad sequence number: {result.first_bad_seq})"
        if result.first_bad_seq is not None
        else ""
    )
    click.echo(f"TAMPERED: {result.message}{where}", err=True)
    sys.exit(1)


def _utc(value: datetime | None) -> datetime | None:
    from datetime import UTC

    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
