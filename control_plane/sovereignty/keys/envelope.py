"""The ciphertext format of every secret at rest: AES-256-GCM under a data key.

Layout (format 1), all integers big-endian::

    b"cpe"  format (1 byte, = 1)  data-key version (4 bytes)  nonce (12 bytes)  ciphertext+tag

The associated data (authenticated, not stored) is the 8-byte header followed by the
canonical JSON of ``[owner, purpose, record_id]``. A ciphertext therefore only opens for
the organization, purpose and record it was written for: copying one tenant's ciphertext
into another tenant's row, or one secret's into another secret, fails like tampering does.
The header is authenticated too, so the data-key version cannot be swapped.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"cpe"
FORMAT_VERSION = 1
DATA_KEY_BYTES = 32  # AES-256
_HEADER = struct.Struct(">3sBI")
_NONCE_BYTES = 12
_TAG_BYTES = 16
PROVIDER_OWNER = "provider"  # owner of provider secrets (no organization)


class EnvelopeError(ValueError):
    """The ciphertext is malformed, was altered, or belongs to another context or key."""


@dataclass(frozen=True)
class Context:
    """What a ciphertext is bound to: its owner, what it is for, and which record holds it."""

    org_id: str | None
    purpose: str
    record_id: str

    def associated_data(self, header: bytes) -> bytes:
        owner = self.org_id or PROVIDER_OWNER
        return header + msgspec.json.encode([owner, self.purpose, self.record_id])


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)


def seal(key: bytes, key_version: int, plaintext: bytes, context: Context) -> bytes:
    """Encrypt ``plaintext`` under data key ``key`` (version ``key_version``) for ``context``."""
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, key_version)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext, context.associated_data(header))
    return header + nonce + sealed


def key_version(ciphertext: bytes) -> int:
    """The data-key version a ciphertext names (unauthenticated until :func:`unseal`)."""
    return _parse_header(ciphertext)[1]


def unseal(key: bytes, ciphertext: bytes, context: Context) -> bytes:
    """Decrypt and authenticate; raise EnvelopeError on any mismatch."""
    header, _ = _parse_header(ciphertext)
    nonce = ciphertext[_HEADER.size : _HEADER.size + _NONCE_BYTES]
    body = ciphertext[_HEADER.size + _NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, context.associated_data(header))
    except (InvalidTag, ValueError) as exc:
        raise EnvelopeError("ciphertext does not authenticate for this key and context") from exc


def _parse_header(ciphertext: bytes) -> tuple[bytes, int]:
    if len(ciphertext) < _HEADER.size + _NONCE_BYTES + _TAG_BYTES:
        raise EnvelopeError("ciphertext is too short")
    magic, fmt, version = _HEADER.unpack_from(ciphertext)
    if magic != MAGIC:
        raise EnvelopeError("not an envelope ciphertext")
    if fmt != FORMAT_VERSION:
        raise EnvelopeError(f"unknown ciphertext format {fmt}")
    return ciphertext[: _HEADER.size], int(version)
