"""Canonical JSON: the one byte encoding every ledger hash and signature is computed over.

Rules (docs/audit-format.md): object keys sorted by code point, no insignificant
whitespace, UTF-8 without ASCII escaping, integers only (floats are refused because two
encoders may print the same float differently), no NaN, strings must be valid Unicode.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime

__all__ = [
    "CanonicalError",
    "canonical_json",
    "format_time",
    "parse_time",
    "payload_hash",
    "sha256_hex",
]

JsonValue = None | bool | int | str | list["JsonValue"] | dict[str, "JsonValue"]


class CanonicalError(ValueError):
    """A value has no canonical encoding (a float, a non-string key, a lone surrogate...)."""


def _check(value: object, path: str) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        raise CanonicalError(f"{path}: floats are not allowed in canonical JSON")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalError(f"{path}: object keys must be strings, got {key!r}")
            _check(item, f"{path}.{key}")
        return
    raise CanonicalError(f"{path}: {type(value).__name__} is not a JSON value")


def canonical_json(value: object) -> bytes:
    """Encode ``value`` as canonical JSON bytes; raise CanonicalError if it has no encoding."""
    _check(value, "$")
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError(f"$: string is not valid Unicode ({exc.reason})") from exc


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def payload_hash(payload: object) -> str:
    """Hex SHA-256 of the canonical payload: what the ledger stores instead of the payload."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits: ``2026-01-01T00:00:00.000000Z``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CanonicalError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Inverse of format_time; refuses any other spelling so the hashed text is unique."""
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise CanonicalError(f"not an RFC 3339 UTC time with microseconds: {text!r}") from exc
    if format_time(moment) != text:
        raise CanonicalError(f"not in canonical form: {text!r}")
    return moment
