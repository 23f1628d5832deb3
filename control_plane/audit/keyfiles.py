"""The region's checkpoint signing keys, kept as files under ``CP_KEY_DIR/audit/<region>/``.

Layout: one ``<key_id>.ed25519`` file per private key (raw 32 bytes, mode 0600, in a
0700 directory) and ``keyring.json``, the public record of every key the region has used
with its validity window. Rotation writes the new key, then closes the old key's window
and opens the new one in one atomic rename of ``keyring.json``; old private keys are
deleted at rotation (nothing signs with them again), their public records stay so old
checkpoints still verify. The first start of a region creates its first key.

In production the directory is a mounted Kubernetes Secret or an HSM-backed file system;
the private key never leaves the region's deployment.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from control_plane.audit.signing import Keyring, PublicKeyRecord, SigningKey
from control_plane.create_once import create_once

__all__ = ["load_keyring", "rotate_signing_key"]

_KEYRING = "keyring.json"


def _region_dir(key_dir: Path, region: str) -> Path:
    path = key_dir / "audit" / region
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _read_records(directory: Path) -> list[PublicKeyRecord]:
    file = directory / _KEYRING
    if not file.exists():
        return []
    return [PublicKeyRecord.from_dict(r) for r in json.loads(file.read_text())["keys"]]


def _write_records(directory: Path, records: list[PublicKeyRecord]) -> None:
    temporary = directory / f".{_KEYRING}.tmp"
    temporary.write_text(json.dumps({"keys": [r.to_dict() for r in records]}, indent=2) + "\n")
    os.replace(temporary, directory / _KEYRING)


def _write_private(directory: Path, key: SigningKey) -> None:
    path = directory / f"{key.key_id}.ed25519"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key.private_bytes())


def _create_first_key(directory: Path, region: str, now: datetime) -> None:
    """The region's first signing key; replicas starting together on an empty shared
    directory end up with one key (the first keyring file linked in wins; the others
    remove the private key they made)."""
    key = SigningKey.generate()
    _write_private(directory, key)
    record = PublicKeyRecord(key.key_id, region, key.public_key_b64, now)
    mine = (json.dumps({"keys": [record.to_dict()]}, indent=2) + "\n").encode()
    if create_once(directory / _KEYRING, mine, mode=0o644) != mine:
        (directory / f"{key.key_id}.ed25519").unlink(missing_ok=True)


def load_keyring(key_dir: Path, region: str, now: datetime) -> Keyring:
    """The region's keyring: every public record plus the active private key.

    Creates the region's first key when there is none.
    """
    directory = _region_dir(key_dir, region)
    records = _read_records(directory)
    if not records:
        _create_first_key(directory, region, now)
        records = _read_records(directory)
    active = records[-1]
    private = SigningKey.from_private_bytes((directory / f"{active.key_id}.ed25519").read_bytes())
    if private.key_id != active.key_id:
        raise RuntimeError(f"{directory}: private key file does not match {active.key_id}")
    return Keyring.from_records(records, private)


def rotate_signing_key(key_dir: Path, region: str, now: datetime) -> PublicKeyRecord:
    """Start signing the region's checkpoints with a new key from ``now``."""
    directory = _region_dir(key_dir, region)
    records = _read_records(directory)
    if records and records[-1].not_before > now:
        raise ValueError("the active key is newer than the rotation time")
    key = SigningKey.generate()
    _write_private(directory, key)
    new = PublicKeyRecord(key.key_id, region, key.public_key_b64, now)
    closed = [
        PublicKeyRecord(r.key_id, r.region, r.public_key, r.not_before, r.not_after or now)
        for r in records
    ]
    _write_records(directory, [*closed, new])
    for old in records:
        (directory / f"{old.key_id}.ed25519").unlink(missing_ok=True)
    return new
