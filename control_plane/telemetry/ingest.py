"""Batches from node agents: checked whole (one bad sample refuses the batch, nothing is
half-stored), recognised when retried (batch id per node) and stored once per GPU and
second; the hours that received new samples are marked for the rollup.

On PostgreSQL a batch travels as one statement: each column as one array parameter
(``unnest``), the process lists as one JSON array, the dirty hours derived from the rows
actually inserted, and only their count coming back. Building a dictionary per sample
cost more than PostgreSQL's insert itself at fleet volumes. SQLite takes the portable
path (rows as dictionaries, ``executemany``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import msgspec
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db.bulk import upsert
from control_plane.errors import FieldError, InvalidInput
from control_plane.inventory import service as inventory
from control_plane.telemetry.models import GpuSample, TelemetryBatch, TelemetryDirtyHour
from control_plane.telemetry.schemas import BatchIn, BatchResult, SampleIn

__all__ = ["SKEW", "InvalidBatch", "ingest_batch"]

SKEW = timedelta(minutes=5)  # how far ahead of our clock an agent's clock may run
_SAMPLES = cast(Table, GpuSample.__table__)
_DIRTY = cast(Table, TelemetryDirtyHour.__table__)
_BATCHES = cast(Table, TelemetryBatch.__table__)
_MAX_ERRORS = 20
_ENCODE = msgspec.json.Encoder().encode

_POSTGRES_INSERT = text("""
WITH rows AS (
    SELECT g.value AS gpu_id, r.*
    FROM json_to_recordset(CAST(:samples AS json)) AS r(
        at timestamptz, gpu_uuid text, sm_util_pct int, mem_util_pct int, mem_used_mib int,
        mem_total_mib int, power_w float8, temp_c int, sm_clock_mhz int, mem_clock_mhz int,
        ecc_corrected int, ecc_uncorrected int, processes json)
    JOIN json_each_text(CAST(:gpus AS json)) AS g ON g.key = r.gpu_uuid
), inserted AS (
    INSERT INTO gpu_sample (gpu_id, at, node_id, sm_util, mem_util, mem_used_mib, mem_total_mib,
        power_w, temp_c, sm_clock_mhz, mem_clock_mhz, ecc_corrected, ecc_uncorrected,
        proc_count, processes)
    SELECT gpu_id, date_trunc('second', at), :node_id, sm_util_pct, mem_util_pct, mem_used_mib,
           mem_total_mib, power_w, temp_c, sm_clock_mhz, mem_clock_mhz, ecc_corrected,
           ecc_uncorrected, json_array_length(processes), processes
    FROM rows
    ON CONFLICT (gpu_id, at) DO NOTHING
    RETURNING gpu_id, at
), dirty AS (
    INSERT INTO telemetry_dirty_hour (gpu_id, hour)
    SELECT DISTINCT gpu_id, date_trunc('hour', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
    FROM inserted
    ON CONFLICT (gpu_id, hour) DO NOTHING
)
SELECT count(*) FROM inserted
""")


class InvalidBatch(InvalidInput):
    status = 422
    slug = "invalid-telemetry-batch"
    title = "The telemetry batch was refused"


async def ingest_batch(
    db: AsyncSession, node_id: str, batch: BatchIn, now: datetime, late: timedelta
) -> BatchResult:
    samples = batch.samples
    gpus = await inventory.gpus_by_uuid(db, node_id)
    gpu_ids = _checked(node_id, samples, gpus, now, late)
    fresh = await upsert(db, _BATCHES, [{
        "node_id": node_id, "batch_id": batch.batch_id, "received_at": now,
        "samples": len(samples), "duplicates": 0,
    }], conflict=("node_id", "batch_id"), returning="batch_id")  # fmt: skip
    if not fresh:
        return BatchResult(accepted=0, duplicates=0, batch_duplicate=True)
    if not samples:
        accepted = 0
    elif (await db.connection()).dialect.name == "postgresql":
        accepted = await _store_postgres(db, node_id, samples, gpus)
    else:
        accepted = await _store_portable(db, node_id, samples, gpu_ids)
    duplicates = len(samples) - accepted
    if duplicates:
        row = await db.get(TelemetryBatch, (node_id, batch.batch_id))
        if row is not None:
            row.duplicates = duplicates
    return BatchResult(accepted=accepted, duplicates=duplicates, batch_duplicate=False)


def _checked(
    node_id: str, samples: list[SampleIn], gpus: dict[str, str], now: datetime, late: timedelta
) -> list[str]:
    """The GPU id of each sample; the batch refused (every bad field named) when any sample
    names another node's GPU, lies outside the accepted time range or is inconsistent."""
    ids = [gpus.get(s.gpu_uuid) for s in samples]
    if samples:
        times = [s.at for s in samples]
        if (None not in ids and min(times) >= now - late and max(times) <= now + SKEW
                and not any(s.mem_used_mib > s.mem_total_mib for s in samples)):  # fmt: skip
            return cast(list[str], ids)
    errors = _errors(node_id, samples, ids, now, late)
    if errors:
        raise InvalidBatch(detail=f"{len(errors)} sample(s) refused; nothing was stored.",
                           errors=errors)  # fmt: skip
    return cast(list[str], ids)


def _errors(
    node_id: str, samples: list[SampleIn], ids: list[str | None], now: datetime, late: timedelta
) -> list[FieldError]:
    errors: list[FieldError] = []
    newest, oldest = now + SKEW, now - late
    for i, (s, gpu_id) in enumerate(zip(samples, ids, strict=True)):
        if gpu_id is None:
            errors.append(FieldError(f"body.samples[{i}].gpu_uuid", f"not a GPU of node {node_id}"))
        elif s.at > newest:
            errors.append(FieldError(f"body.samples[{i}].at", "in the future (check the clock)"))
        elif s.at < oldest:
            late_h = late.total_seconds() / 3600
            errors.append(FieldError(f"body.samples[{i}].at", f"older than {late_h:g} hours"))
        elif s.mem_used_mib > s.mem_total_mib:
            errors.append(FieldError(f"body.samples[{i}].mem_used_mib", "above mem_total_mib"))
        if len(errors) >= _MAX_ERRORS:
            break
    return errors


async def _store_postgres(
    db: AsyncSession, node_id: str, samples: list[SampleIn], gpus: dict[str, str]
) -> int:
    """The samples go as the agent's own JSON (msgspec encodes the structs in C), read by
    PostgreSQL with a column list; the node's GPUs (UUID -> id) join in as a small map."""
    params = {
        "node_id": node_id,
        "samples": _ENCODE(samples).decode(),
        "gpus": _ENCODE(gpus).decode(),
    }
    return int((await db.execute(_POSTGRES_INSERT, params)).scalar_one())


async def _store_portable(
    db: AsyncSession, node_id: str, samples: list[SampleIn], gpu_ids: list[str]
) -> int:
    rows = []
    hours: set[tuple[str, datetime]] = set()
    for s, gpu_id in zip(samples, gpu_ids, strict=True):
        at = s.at.astimezone(UTC).replace(microsecond=0)
        rows.append({
            "gpu_id": gpu_id, "at": at, "node_id": node_id, "sm_util": s.sm_util_pct,
            "mem_util": s.mem_util_pct, "mem_used_mib": s.mem_used_mib,
            "mem_total_mib": s.mem_total_mib, "power_w": s.power_w, "temp_c": s.temp_c,
            "sm_clock_mhz": s.sm_clock_mhz, "mem_clock_mhz": s.mem_clock_mhz,
            "ecc_corrected": s.ecc_corrected, "ecc_uncorrected": s.ecc_uncorrected,
            "proc_count": len(s.processes),
            "processes": [{"pid": p.pid, "name": p.name, "used_mib": p.used_mib}
                          for p in s.processes],
        })  # fmt: skip
        hours.add((gpu_id, at.replace(minute=0, second=0)))
    stored = await upsert(db, _SAMPLES, rows, conflict=("gpu_id", "at"), returning="at")
    # Every hour the batch touched is marked (a retry re-rolls its hours: cheap here).
    await upsert(db, _DIRTY, [{"gpu_id": g, "hour": h} for g, h in sorted(hours)],
                 conflict=("gpu_id", "hour"))  # fmt: skip
    return len(stored)
