"""The insights loop: analyse every organization's GPUs every ``insights_interval_seconds``."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import Clock
from control_plane.insights.analysis import GpuPricer
from control_plane.insights.service import run_analysis
from control_plane.periodic import every
from control_plane.settings import Settings

__all__ = ["insights_loop"]

log = structlog.get_logger("control_plane.insights")


async def insights_loop(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    pricer: GpuPricer,
) -> None:
    async def tick() -> None:
        async with sessionmaker() as db:
            result = await run_analysis(db, pricer, clock, settings)
            await db.commit()
        log.info("waste analysis", findings=result.findings, new=result.new,
                 resolved=result.resolved, tenancies=result.tenancies)  # fmt: skip

    await every(settings.insights_interval_seconds, tick, name="waste analysis")
