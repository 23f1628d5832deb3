"""What the agent sends: ``POST /api/v1/telemetry/batches`` bodies (agent side only).

The control plane's ingest has its own structs for the same JSON; docs/telemetry.md is the
contract between the two. A sample is one GPU at one instant; a batch is up to
:data:`MAX_SAMPLES` of them under an id unique per node that sorts by creation time.
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime

import msgspec

AGENT_VERSION = "0.1.0"
MAX_SAMPLES = 5000  # the ingest API refuses larger batches
MIB = 1 << 20


class Process(msgspec.Struct, frozen=True):
    """A compute process on a GPU; ``used_mib`` is None when NVML cannot tell."""

    pid: int
    name: str
    used_mib: int | None


class Sample(msgspec.Struct, frozen=True):
    """One GPU at one instant (``at`` is UTC, to the second)."""

    at: datetime
    gpu_uuid: str
    index: int
    sm_util_pct: int
    mem_util_pct: int
    mem_used_mib: int
    mem_total_mib: int
    power_w: float
    temp_c: int
    sm_clock_mhz: int
    mem_clock_mhz: int
    ecc_corrected: int | None
    ecc_uncorrected: int | None
    processes: list[Process]


class Batch(msgspec.Struct, frozen=True, kw_only=True):
    batch_id: str
    agent_version: str = AGENT_VERSION
    samples: list[Sample]


_lock = threading.Lock()
_last_ms = 0


def new_batch_id(now: datetime) -> str:
    """``<epoch ms, 13 digits>-<8 random hex>``; strictly increasing within a process."""
    global _last_ms
    with _lock:
        ms = max(int(now.timestamp() * 1000), _last_ms + 1)
        _last_ms = ms
    return f"{ms:013d}-{secrets.token_hex(4)}"


def to_second(at: datetime) -> datetime:
    """``at`` in UTC without its fraction of a second, as the wire format wants it."""
    return at.astimezone(UTC).replace(microsecond=0)


def encode_batch(batch: Batch) -> bytes:
    return msgspec.json.encode(batch)


def decode_batch(data: bytes) -> Batch:
    return msgspec.json.decode(data, type=Batch)
