"""Signed, short-lived tokens for the VM console proxy (websockify + noVNC).

A token is ``<payload>.<signature>``, both unpadded base64url: the payload is compact
JSON ``{"v": 1, "ten": tenancy id, "dom": domain name, "host": node host name, "exp":
unix seconds}``, the signature HMAC-SHA256 over the payload's base64url text with
``CP_LIBVIRT_CONSOLE_KEY``. The proxy, holding the same key, recomputes the signature
(constant-time compare), refuses an expired token, and connects to the domain's VNC
display on that host (``virsh -c <uri> domdisplay <dom>``); see docs/drivers/libvirt.md.
Nothing secret is inside the payload: the signature is what makes it a credential.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["ConsoleClaims", "InvalidToken", "sign", "verify"]

VERSION = 1


class InvalidToken(ValueError):
    """The token is malformed, signed with another key, or expired."""


@dataclass(frozen=True, slots=True)
class ConsoleClaims:
    tenancy_id: str
    domain: str
    host: str
    expires_at: datetime


def sign(claims: ConsoleClaims, key: bytes) -> str:
    """The token for ``claims``; ``key`` must be non-empty."""
    if not key:
        raise ValueError("no console signing key")
    payload = {
        "v": VERSION,
        "ten": claims.tenancy_id,
        "dom": claims.domain,
        "host": claims.host,
        "exp": int(claims.expires_at.timestamp()),
    }
    body = _encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_encode(_mac(key, body))}"


def verify(token: str, key: bytes, now: datetime) -> ConsoleClaims:
    """The claims of a genuine, unexpired token; :class:`InvalidToken` otherwise."""
    body, dot, signature = token.partition(".")
    if not dot or not key:
        raise InvalidToken("malformed token")
    try:
        genuine = hmac.compare_digest(_decode(signature), _mac(key, body))
    except ValueError as exc:
        raise InvalidToken("malformed token") from exc
    if not genuine:
        raise InvalidToken("bad signature")
    try:
        payload = json.loads(_decode(body))
        version = payload["v"]
        claims = ConsoleClaims(
            str(payload["ten"]),
            str(payload["dom"]),
            str(payload["host"]),
            datetime.fromtimestamp(int(payload["exp"]), UTC),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidToken("malformed token") from exc
    if version != VERSION:
        raise InvalidToken("unknown token version")
    if now >= claims.expires_at:
        raise InvalidToken("token expired")
    return claims


def _mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
