"""Password hashing (argon2id) and high-entropy tokens (API keys, sessions) hashed with SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
# Verified against when the user does not exist, so timing does not reveal accounts.
_DUMMY_HASH = _HASHER.hash("not-a-real-password-" + secrets.token_hex(8))

API_KEY_PREFIX = "cpk"


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-work check: an unknown user still costs one argon2 verification."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    """SHA-256 hex digest: enough for 256-bit random tokens, and fast on the hot path."""
    return hashlib.sha256(token.encode()).hexdigest()


def digests_match(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def new_api_key() -> tuple[str, str]:
    """Return (visible prefix, full secret key). Only the prefix and a digest are stored."""
    prefix = f"{API_KEY_PREFIX}_{secrets.token_hex(6)}"
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


def split_api_key(key: str) -> str | None:
    """The lookup prefix of a presented key, or None when it is not shaped like one."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != API_KEY_PREFIX or len(parts[1]) != 12:
        return None
    return f"{parts[0]}_{parts[1]}"
