"""Create a file exactly once, even when several processes race to create it.

Replicas that start together on an empty shared directory would otherwise each write their
own first key (and a reader could see a half-written file). The content is written to a
private temporary file, then hard-linked into place: the link either creates the file,
whole, or fails because another process got there first, whose content is then returned.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["create_once"]


def create_once(path: Path, content: bytes, mode: int = 0o600) -> bytes:
    """``path``'s content: ``content`` if this call created it, else what is already there."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_bytes()
        return content
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
