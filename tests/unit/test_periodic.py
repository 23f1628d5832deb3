"""Background loops stop between ticks: a tick in flight finishes before the loop ends."""

from __future__ import annotations

import asyncio

import pytest

from control_plane.periodic import every


async def test_cancelling_mid_tick_lets_the_tick_finish_first() -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def tick() -> None:
        started.set()
        await asyncio.sleep(0.05)  # a transaction in flight
        finished.set()

    task = asyncio.create_task(every(0.001, tick, name="test"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()


async def test_a_failing_tick_is_retried_at_the_next_one() -> None:
    calls = 0
    third = asyncio.Event()

    async def tick() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database unreachable")
        if calls == 3:
            third.set()

    task = asyncio.create_task(every(0.001, tick, name="test"))
    await asyncio.wait_for(third.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls >= 3
