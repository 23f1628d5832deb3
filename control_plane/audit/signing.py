"""Ed25519 checkpoint keys: one active signing key per region, retired keys kept for checking.

key_id = first 16 hex digits of SHA-256(raw 32-byte public key). A public key is valid for
checkpoints whose time lies in [not_before, not_after); not_after is None while active.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from control_plane.audit.canonical import format_time, parse_time

__all__ = [
    "Keyring",
    "PublicKeyRecord",
    "SigningKey",
    "check_signed",
    "key_id_for",
    "verify_signature",
]


def key_id_for(public_raw: bytes) -> str:
    """First 16 hex digits of SHA-256 of the raw public key."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


class SigningKey:
    """An Ed25519 private key; never serialized into exports or logs."""

    __slots__ = ("_private", "key_id", "public_raw")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id_for(self.public_raw)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> SigningKey:
        """Load the 32-byte raw seed (what a key file holds)."""
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        """The 32-byte raw seed, for the region's key file."""
        return self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode("ascii")

    def sign(self, message: bytes) -> str:
        """Base64 Ed25519 signature of ``message``."""
        return base64.b64encode(self._private.sign(message)).decode("ascii")

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"


def verify_signature(public_key_b64: str, message: bytes, signature_b64: str) -> bool:
    """True when ``signature_b64`` is a valid Ed25519 signature of ``message``."""
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        public.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


@dataclass(frozen=True, slots=True)
class PublicKeyRecord:
    """A region's public checkpoint key and the window in which it may sign."""

    key_id: str
    region: str
    public_key: str  # base64 of the raw 32 bytes
    not_before: datetime
    not_after: datetime | None = None

    def valid_at(self, moment: datetime) -> bool:
        return self.not_before <= moment and (self.not_after is None or moment < self.not_after)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "region": self.region,
            "algorithm": "ed25519",
            "public_key": self.public_key,
            "not_before": format_time(self.not_before),
            "not_after": None if self.not_after is None else format_time(self.not_after),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PublicKeyRecord:
        """Parse ``to_dict`` output; raises ValueError/KeyError/TypeError if malformed."""
        if data.get("algorithm") != "ed25519":
            raise ValueError(f"unsupported key algorithm {data.get('algorithm')!r}")
        public = str(data["public_key"])
        key_id = str(data["key_id"])
        if key_id_for(base64.b64decode(public, validate=True)) != key_id:
            raise ValueError(f"key {key_id}: key_id does not match the public key")
        not_after = data["not_after"]
        return cls(
            key_id=key_id,
            region=str(data["region"]),
            public_key=public,
            not_before=parse_time(str(data["not_before"])),
            not_after=None if not_after is None else parse_time(str(not_after)),
        )


class Keyring:
    """Active signing key per region plus every public key ever used, with windows."""

    def __init__(self) -> None:
        self._active: dict[str, SigningKey] = {}
        self._records: dict[str, PublicKeyRecord] = {}

    def add(self, region: str, key: SigningKey, not_before: datetime) -> None:
        """Make ``key`` the region's active key from ``not_before`` (retiring the old one)."""
        old = self._active.get(region)
        if old is not None:
            current = self._records[old.key_id]
            if not_before < current.not_before:
                raise ValueError("a rotation cannot predate the active key")
            self._records[old.key_id] = replace(current, not_after=not_before)
        self._active[region] = key
        self._records[key.key_id] = PublicKeyRecord(
            key.key_id, region, key.public_key_b64, not_before
        )

    rotate = add

    @classmethod
    def from_records(cls, records: Iterable[PublicKeyRecord], active: SigningKey) -> Keyring:
        """A keyring from stored public records (of one region); ``active`` signs from now."""
        ring = cls()
        for record in records:
            ring._records[record.key_id] = record
            if record.key_id == active.key_id:
                ring._active[record.region] = active
        if active.key_id not in ring._records:
            raise ValueError(f"active key {active.key_id} has no public record")
        return ring

    def signing_key(self, region: str) -> SigningKey:
        return self._active[region]

    def public_keys(self, region: str | None = None) -> list[PublicKeyRecord]:
        """Every public key (of one region if given), oldest first."""
        keys = [r for r in self._records.values() if region is None or r.region == region]
        return sorted(keys, key=lambda r: (r.region, r.not_before))


def check_signed(
    keys: Iterable[PublicKeyRecord],
    *,
    key_id: str,
    region: str,
    at: datetime,
    message: bytes,
    signature: str,
) -> str | None:
    """None if ``signature`` by ``key_id`` is valid for ``region`` at ``at``; else why not."""
    record = next((k for k in keys if k.key_id == key_id), None)
    if record is None:
        return f"signed by unknown key {key_id}"
    if record.region != region:
        return f"key {key_id} belongs to region {record.region}, not {region}"
    if not record.valid_at(at):
        return f"key {key_id} was not valid at {format_time(at)}"
    if not verify_signature(record.public_key, message, signature):
        return f"signature by key {key_id} does not verify"
    return None
