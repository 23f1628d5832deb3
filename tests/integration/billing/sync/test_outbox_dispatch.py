"""The outbox dispatcher: leases, retries with backoff, dead letters, and two dispatchers
racing for the same messages."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.outbox.dispatch import Claimed, Dispatcher, PermanentError, WriteBack
from billing.outbox.models import OutboxMessage
from billing.outbox.service import enqueue
from control_plane.clock import FrozenClock


class Recorder:
    """A sender that records what it was given and fails the first ``failures`` times."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("receiver unreachable")
        self.delivered: list[str] = []
        self.calls = 0

    async def __call__(self, message: Claimed) -> WriteBack | None:
        self.calls += 1
        await asyncio.sleep(0)  # let a competing dispatcher run in between
        if self.calls <= self.failures:
            raise self.error
        self.delivered.append(message.key)
        return None


async def _enqueue(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, *keys: str
) -> None:
    async with sessions() as db:
        for key in keys:
            await enqueue(db, key=key, topic="test", org_id=None, payload={"k": key},
                          now=clock.now())  # fmt: skip
        await db.commit()


async def _message(sessions: async_sessionmaker[AsyncSession], key: str) -> OutboxMessage:
    async with sessions() as db:
        return (
            await db.execute(select(OutboxMessage).where(OutboxMessage.key == key))
        ).scalar_one()


Sessions = async_sessionmaker[AsyncSession]


def _dispatcher(
    sessions: Sessions, clock: FrozenClock, sender: Recorder, **options: Any
) -> Dispatcher:
    return Dispatcher(sessions, clock, {"test": sender}, rng=random.Random(7), **options)


class TestDelivery:
    async def test_a_delivered_message_is_done_and_not_sent_again(
        self, sessions: Sessions, frozen: FrozenClock
    ) -> None:
        sender = Recorder()
        await _enqueue(sessions, frozen, "alert-1")
        dispatcher = _dispatcher(sessions, frozen, sender)

        assert await dispatcher.drain() == {"done": 1}
        frozen.advance(3600)
        assert await dispatcher.drain() == {}

        assert sender.delivered == ["alert-1"]
        message = await _message(sessions, "alert-1")
        assert message.done_at == frozen.now() - timedelta(hours=1)
        assert message.attempts == 1
        assert message.last_error == ""

    async def test_a_claimed_message_is_not_claimed_again_until_its_lease_ends(
        self, sessions: Sessions, frozen: FrozenClock
    ) -> None:
        await _enqueue(sessions, frozen, "alert-2")
        first = _dispatcher(sessions, frozen, Recorder(), lease_seconds=60)
        second = _dispatcher(sessions, frozen, Recorder(), lease_seconds=60)

        [held] = await first.claim()
        assert await second.claim() == []
        frozen.advance(61)  # the first dispatcher died holding it
        [taken] = await second.claim()

        assert taken.key == "alert-2"
        assert taken.attempts == 2
        assert await first.deliver(held) == "lost"  # its lease is gone: it settles nothing
        assert await second.deliver(taken) == "done"


class TestRetries:
    async def test_a_failure_is_retried_later_with_growing_jittered_delays(
        self, sessions: Sessions, frozen: FrozenClock
    ) -> None:
        sender = Recorder(failures=3)
        await _enqueue(sessions, frozen, "alert-3")
        dispatcher = _dispatcher(sessions, frozen, sender, base_delay_seconds=10)
        delays = []
        for _ in range(3):
            assert await dispatcher.drain() == {"retry": 1}
            message = await _message(sessions, "alert-3")
            assert message.last_error == "ConnectionError: receiver unreachable"
            delay = (message.next_attempt_at - frozen.now()).total_seconds()
            delays.append(delay)
            assert await dispatcher.drain() == {}  # not due yet
            frozen.advance(delay)

        assert await dispatcher.drain() == {"done": 1}
        assert [5 <= delays[0] <= 10, 10 <= delays[1] <= 20, 20 <= delays[2] <= 40] == [True] * 3
        assert sender.delivered == ["alert-3"]

    async def test_after_the_last_attempt_the_message_is_kept_as_dead(
        self, sessions: Sessions, frozen: FrozenClock
    ) -> None:
        sender = Recorder(failures=99)
        await _enqueue(sessions, frozen, "alert-4")
        dispatcher = _dispatcher(sessions, frozen, sender, max_attempts=3, base_delay_seconds=1)
        outcomes = []
        for _ in range(5):
            outcomes.append(await dispatcher.drain())
            frozen.advance(3600)

        assert outcomes == [{"retry": 1}, {"retry": 1}, {"dead": 1}, {}, {}]
        message = await _message(sessions, "alert-4")
        assert message.dead_at is not None
        assert message.done_at is None
        assert message.attempts == 3
        assert "receiver unreachable" in message.last_error

    async def test_a_permanent_error_is_dead_at_once(
        self, sessions: Sessions, frozen: FrozenClock
    ) -> None:
        await _enqueue(sessions, frozen, "alert-5")
        sender = Recorder(failures=1, error=PermanentError("budget gone"))

        assert await _dispatcher(sessions, frozen, sender).drain() == {"dead": 1}
        assert (await _message(sessions, "alert-5")).last_error == "PermanentError: budget gone"

    async def test_a_topic_without_a_sender_is_dead_with_the_reason(
        self, sessions: Sessions, frozen: FrozenClock
    ) -> None:
        async with sessions() as db:
            await enqueue(db, key="x-1", topic="fax", org_id=None, payload={}, now=frozen.now())
            await db.commit()

        assert await _dispatcher(sessions, frozen, Recorder()).drain() == {"dead": 1}
        assert "no sender for topic 'fax'" in (await _message(sessions, "x-1")).last_error


class TestConcurrency:
    async def test_two_dispatchers_never_deliver_the_same_message_twice(
        self, sessions: Sessions, frozen: FrozenClock
    ) -> None:
        keys = [f"alert-c{n}" for n in range(30)]
        await _enqueue(sessions, frozen, *keys)
        sender = Recorder()
        one = _dispatcher(sessions, frozen, sender, batch=4)
        two = _dispatcher(sessions, frozen, sender, batch=4)

        await asyncio.gather(one.drain(), two.drain(), one.drain(), two.drain())

        assert Counter(sender.delivered) == Counter(keys)
        async with sessions() as db:
            pending = await db.execute(
                select(OutboxMessage.key).where(OutboxMessage.done_at.is_(None))
            )
            assert list(pending.scalars()) == []
