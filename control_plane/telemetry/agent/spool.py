"""The agent's disk buffer: batches wait here until the control plane has them.

One file per batch, ``<batch_id>.json``, written atomically (temporary file, fsync,
rename, fsync of the directory), so a crash leaves either the whole batch or nothing.
Batch ids start with their creation time in milliseconds, so name order is creation
order and shipping takes the oldest first. Files already present when the agent starts
are shipped before anything new.

Disk use is bounded: when the batches waiting pass ``max_bytes`` the oldest are deleted
(the caller counts and logs them as dropped); the newest batch is always kept. Batches the
control plane refuses for good move to ``rejected/`` for an operator to look at, which is
bounded the same way (``rejected_max_bytes``).
"""

from __future__ import annotations

import os
from pathlib import Path

from control_plane.telemetry.agent.wire import Batch, encode_batch

SUFFIX = ".json"
TEMP_SUFFIX = ".tmp"
DEFAULT_MAX_BYTES = 64 << 20


class Spool:
    def __init__(
        self,
        directory: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        rejected_max_bytes: int | None = None,
    ) -> None:
        self.directory = directory
        self.rejected_dir = directory / "rejected"
        self.max_bytes = max_bytes
        if rejected_max_bytes is None:
            rejected_max_bytes = max_bytes // 8
        self.rejected_max_bytes = rejected_max_bytes
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.rejected_dir.mkdir(exist_ok=True, mode=0o700)
        for leftover in directory.glob(f".*{TEMP_SUFFIX}"):  # a write a crash interrupted
            leftover.unlink(missing_ok=True)

    def put(self, batch: Batch) -> list[str]:
        """Keep ``batch``; the ids of older batches dropped to stay within the bound."""
        _write_atomically(self.directory / f"{batch.batch_id}{SUFFIX}", encode_batch(batch))
        return _trim(self.pending(), self.max_bytes)

    def pending(self) -> list[Path]:
        """Batches waiting to ship, oldest first."""
        return _batches(self.directory)

    def rejected(self) -> list[Path]:
        return _batches(self.rejected_dir)

    def total_bytes(self) -> int:
        return sum(_size(p) for p in self.pending())

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def reject(self, path: Path) -> None:
        """Set ``path`` aside in ``rejected/``: it will not be sent again."""
        os.replace(path, self.rejected_dir / path.name)
        _fsync_dir(self.directory)
        _trim(self.rejected(), self.rejected_max_bytes)

    def replace(self, path: Path, batches: list[Batch]) -> None:
        """Put ``batches`` in place of the batch at ``path`` (e.g. its halves)."""
        for batch in batches:
            _write_atomically(self.directory / f"{batch.batch_id}{SUFFIX}", encode_batch(batch))
        path.unlink(missing_ok=True)


def batch_id_of(path: Path) -> str:
    return path.name.removesuffix(SUFFIX)


def _batches(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob(f"*{SUFFIX}") if not p.name.startswith("."))


def _trim(oldest_first: list[Path], max_bytes: int) -> list[str]:
    """Delete the oldest files until the rest fit in ``max_bytes`` (keep the newest)."""
    sizes = [_size(p) for p in oldest_first]
    total, dropped = sum(sizes), []
    for path, size in zip(oldest_first[:-1], sizes, strict=False):
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
        dropped.append(batch_id_of(path))
    return dropped


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _write_atomically(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.stem}{TEMP_SUFFIX}")
    with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (the directory entry lives in the directory's own blocks)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
