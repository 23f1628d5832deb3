"""Background work of the telemetry domain: roll dirty hours up, age old data out."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import Clock
from control_plane.periodic import every
from control_plane.settings import Settings
from control_plane.telemetry.models import GpuHour, GpuSample, TelemetryBatch
from control_plane.telemetry.rollup import roll_up_dirty

__all__ = ["expire", "roll_up_all", "telemetry_loop"]

log = structlog.get_logger("control_plane.telemetry")
_RETENTION_EVERY = timedelta(hours=1)


async def roll_up_all(sessionmaker: async_sessionmaker[AsyncSession], chunk: int = 2000) -> int:
    """Roll up every dirty hour, one committed chunk at a time; returns how many."""
    total = 0
    while True:
        async with sessionmaker() as db:
            done = await roll_up_dirty(db, chunk)
            await db.commit()
        total += done
        if done < chunk:
            return total


async def expire(db: AsyncSession, settings: Settings, now: datetime) -> tuple[int, int]:
    """Delete raw samples (and batch ids) past their days, and rollups past theirs."""
    raw_before = now - timedelta(days=settings.telemetry_raw_days)
    samples = await db.execute(delete(GpuSample).where(GpuSample.at < raw_before))
    await db.execute(delete(TelemetryBatch).where(TelemetryBatch.received_at < raw_before))
    hours = await db.execute(
        delete(GpuHour).where(GpuHour.hour < now - timedelta(days=settings.telemetry_rollup_days))
    )
    return _count(samples), _count(hours)


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def telemetry_loop(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, clock: Clock
) -> None:
    """Roll up every ``telemetry_rollup_seconds``; expire old data once an hour."""
    expired_at: datetime | None = None

    async def tick() -> None:
        nonlocal expired_at
        rolled = await roll_up_all(sessionmaker)
        if rolled:
            log.info("telemetry hours rolled up", hours=rolled)
        now = clock.now()
        if expired_at is None or now - expired_at >= _RETENTION_EVERY:
            async with sessionmaker() as db:
                samples, hours = await expire(db, settings, now)
                await db.commit()
            expired_at = now
            if samples or hours:
                log.info("telemetry expired", samples=samples, hours=hours)

    await every(settings.telemetry_rollup_seconds, tick, name="telemetry rollup")
