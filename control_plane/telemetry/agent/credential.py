"""The node credential the agent presents as a bearer token, and where it comes from."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path

CREDENTIAL_ENV = "CP_AGENT_CREDENTIAL"


class CredentialError(Exception):
    """No usable credential; the message says what to fix (and never holds the secret)."""


class Credential:
    """A secret that does not show itself in reprs, logs or tracebacks."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "Credential('***')"

    __str__ = __repr__

    def authorization(self) -> str:
        """The ``Authorization`` header value."""
        return f"Bearer {self._secret}"


def load_credential(path: Path | None, environ: Mapping[str, str]) -> Credential:
    """From ``path`` (readable by its owner only, as ssh insists for keys), else the env."""
    if path is not None:
        return Credential(_read_private_file(path))
    secret = environ.get(CREDENTIAL_ENV, "").strip()
    if not secret:
        raise CredentialError(f"no node credential: pass --credential-file or set {CREDENTIAL_ENV}")
    return Credential(secret)


def _read_private_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise CredentialError(f"credential file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialError(
            f"credential file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); refusing to use it: run chmod 600 {path}"
        )
    secret = path.read_text().strip()
    if not secret:
        raise CredentialError(f"credential file {path} is empty")
    return secret
