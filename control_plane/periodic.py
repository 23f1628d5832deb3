"""Background loops that stop between ticks, never in the middle of one.

Cancelling a task while it awaits a database call leaves that call running in the
driver (aiosqlite's thread, asyncpg's protocol) with its transaction open: the connection
escapes the pool's rollback and keeps its locks until it is garbage collected. So a
loop's tick runs shielded; cancellation waits for the tick to commit or roll back, then
stops the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

__all__ = ["every"]

log = structlog.get_logger("control_plane.periodic")


async def every(seconds: float, tick: Callable[[], Awaitable[None]], *, name: str) -> None:
    """Run ``tick`` every ``seconds`` until cancelled; a failing tick is logged and retried."""
    while True:
        await asyncio.sleep(seconds)
        job = asyncio.ensure_future(_guarded(tick, name))
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            await job  # finish the tick in flight, then stop
            raise


async def _guarded(tick: Callable[[], Awaitable[None]], name: str) -> None:
    try:
        await tick()
    except Exception:  # logged; the next tick tries again
        log.exception("background task failed; retrying at the next tick", task=name)
