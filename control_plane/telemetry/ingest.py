"""Batches from node agents: checked whole (one bad sample refuses the batch, nothing is
half-stored), recognised when retried (batch id per node) and stored once per GPU and
second; the hours they touch are marked for the rollup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db.bulk import upsert
from control_plane.errors import FieldError, InvalidInput
from control_plane.inventory import service as inventory
from control_plane.telemetry.models import GpuSample, TelemetryBatch, TelemetryDirtyHour
from control_plane.telemetry.schemas import BatchIn, BatchResult, SampleIn

__all__ = ["SKEW", "ingest_batch"]

SKEW = timedelta(minutes=5)  # how far ahead of our clock an agent's clock may run
_SAMPLES = cast(Table, GpuSample.__table__)
_DIRTY = cast(Table, TelemetryDirtyHour.__table__)
_BATCHES = cast(Table, TelemetryBatch.__table__)


class InvalidBatch(InvalidInput):
    status = 422
    slug = "invalid-telemetry-batch"
    title = "The telemetry batch was refused"


async def ingest_batch(
    db: AsyncSession, node_id: str, batch: BatchIn, now: datetime, late: timedelta
) -> BatchResult:
    gpus = await inventory.gpus_by_uuid(db, node_id)
    rows, hours = _rows(node_id, batch.samples, gpus, now, late)
    fresh = await upsert(db, _BATCHES, [{
        "node_id": node_id, "batch_id": batch.batch_id, "received_at": now,
        "samples": len(rows), "duplicates": 0,
    }], conflict=("node_id", "batch_id"), returning="batch_id")  # fmt: skip
    if not fresh:
        return BatchResult(accepted=0, duplicates=0, batch_duplicate=True)
    stored = await upsert(db, _SAMPLES, rows, conflict=("gpu_id", "at"), returning="node_id")
    await upsert(db, _DIRTY, [{"gpu_id": g, "hour": h} for g, h in sorted(hours)],
                 conflict=("gpu_id", "hour"))  # fmt: skip
    duplicates = len(rows) - len(stored)
    if duplicates:
        row = await db.get(TelemetryBatch, (node_id, batch.batch_id))
        if row is not None:
            row.duplicates = duplicates
    return BatchResult(accepted=len(stored), duplicates=duplicates, batch_duplicate=False)


def _rows(
    node_id: str,
    samples: list[SampleIn],
    gpus: dict[str, str],
    now: datetime,
    late: timedelta,
) -> tuple[list[dict[str, object]], set[tuple[str, datetime]]]:
    errors: list[FieldError] = []
    rows: list[dict[str, object]] = []
    hours: set[tuple[str, datetime]] = set()
    newest, oldest = now + SKEW, now - late
    for i, s in enumerate(samples):
        gpu_id = gpus.get(s.gpu_uuid)
        at = s.at.replace(tzinfo=UTC) if s.at.tzinfo is None else s.at.astimezone(UTC)
        at = at.replace(microsecond=0)
        if gpu_id is None:
            errors.append(FieldError(f"body.samples[{i}].gpu_uuid", f"not a GPU of node {node_id}"))
        elif at > newest:
            errors.append(FieldError(f"body.samples[{i}].at", "in the future (check the clock)"))
        elif at < oldest:
            late_h = late.total_seconds() / 3600
            errors.append(FieldError(f"body.samples[{i}].at", f"older than {late_h:g} hours"))
        elif s.mem_used_mib > s.mem_total_mib:
            errors.append(FieldError(f"body.samples[{i}].mem_used_mib", "above mem_total_mib"))
        if errors:
            if len(errors) >= 20:
                break
            continue
        assert gpu_id is not None
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
    if errors:
        raise InvalidBatch(detail=f"{len(errors)} sample(s) refused; nothing was stored.",
                           errors=errors)  # fmt: skip
    return rows, hours
