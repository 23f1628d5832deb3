"""Delivering the outbox: claim due messages with a lease, deliver outside any
transaction, then settle (done, retry later, or dead) guarded by that lease.

A claim sets ``lease_until`` and counts the attempt in one short transaction (on
PostgreSQL the candidates are read ``FOR UPDATE SKIP LOCKED``; on both databases each row
is taken by a conditional UPDATE, so of two dispatchers only one wins a row). The lease's
end doubles as the claim's fencing token: a later claim can only happen after it expired,
so its ``lease_until`` is strictly later, and a settle ``WHERE lease_until = <mine>`` from
a dispatcher that lost its lease changes nothing.

Retries back off exponentially with jitter (``base * 2**(attempt-1)``, capped, times a
random factor in [0.5, 1]); a few lines, so no retry library: tenacity retries calls in
process, while here the schedule must survive in the table. After ``max_attempts`` (or at
once on :class:`PermanentError`) the message is marked dead and kept for operators.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import ColumnElement, CursorResult, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.outbox.models import OutboxMessage
from control_plane.clock import Clock
from control_plane.periodic import every

__all__ = ["Claimed", "Dispatcher", "PermanentError", "Sender", "WriteBack"]

log = structlog.get_logger("billing.outbox")

WriteBack = Callable[[AsyncSession], Awaitable[None]]
_MAX_ERROR = 2000


class PermanentError(Exception):
    """A failure no retry can fix (unknown budget, invoice not pushable): dead at once."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message this dispatcher holds the lease on."""

    id: str
    key: str
    topic: str
    org_id: str | None
    payload: dict[str, Any]
    attempts: int  # including this one
    lease_until: datetime


class Sender(Protocol):
    """Delivers one message; raises to retry. May return a write-back that runs in the
    settling transaction (so it lands only if this dispatcher still holds the lease)."""

    async def __call__(self, message: Claimed) -> WriteBack | None: ...


class Dispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        senders: Mapping[str, Sender],
        *,
        lease_seconds: float = 120.0,
        max_attempts: int = 10,
        base_delay_seconds: float = 30.0,
        max_delay_seconds: float = 6 * 3600.0,
        batch: int = 20,
        rng: random.Random | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.senders = dict(senders)
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.base_delay = base_delay_seconds
        self.max_delay = max_delay_seconds
        self.batch = batch
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy

    def backoff(self, attempts: int) -> timedelta:
        """How long to wait after the ``attempts``-th failed attempt."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** min(attempts - 1, 40))
        return timedelta(seconds=ceiling * (0.5 + self._rng.random() / 2))

    async def claim(self, limit: int | None = None) -> list[Claimed]:
        """Take the lease on up to ``limit`` due messages and commit."""
        now = self.clock.now()
        lease_until = now + self.lease
        async with self.sessionmaker() as db:
            query = (
                select(OutboxMessage.id)
                .where(*_due(now))
                .order_by(OutboxMessage.next_attempt_at)
                .limit(limit or self.batch)
            )
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            claimed: list[Claimed] = []
            for message_id in list((await db.execute(query)).scalars()):
                taken = await db.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == message_id, *_due(now))
                    .values(lease_until=lease_until, attempts=OutboxMessage.attempts + 1)
                    .returning(
                        OutboxMessage.key,
                        OutboxMessage.topic,
                        OutboxMessage.org_id,
                        OutboxMessage.payload,
                        OutboxMessage.attempts,
                    )
                )
                row = taken.first()
                if row is not None:
                    key, topic, org_id, payload, attempts = row
                    claimed.append(
                        Claimed(message_id, key, topic, org_id, payload, attempts, lease_until)
                    )
            await db.commit()
        return claimed

    async def deliver(self, message: Claimed) -> str:
        """Send one claimed message and settle it: ``done``, ``retry``, ``dead`` or
        ``lost`` (the lease ran out and someone else may have it now)."""
        sender = self.senders.get(message.topic)
        write_back: WriteBack | None = None
        error: Exception | None = None
        try:
            if sender is None:
                raise PermanentError(f"no sender for topic {message.topic!r}")
            write_back = await sender(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is written back: retried or dead
            error = exc
        return await self._settle(message, write_back, error)

    async def run_once(self) -> dict[str, int]:
        """Claim one batch and deliver it; how many messages ended each way."""
        outcomes: dict[str, int] = {}
        for message in await self.claim():
            outcome = await self.deliver(message)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return outcomes

    async def drain(self) -> dict[str, int]:
        """Deliver batches until nothing is due (tests and ``cpctl``-style one-shots)."""
        total: dict[str, int] = {}
        while outcomes := await self.run_once():
            for outcome, count in outcomes.items():
                total[outcome] = total.get(outcome, 0) + count
        return total

    async def run(self, seconds: float) -> None:
        """Deliver what is due every ``seconds`` until cancelled (a delivery in flight is
        settled first); a failed pass is logged and tried again at the next tick."""

        async def tick() -> None:
            await self.drain()

        await every(seconds, tick, name="outbox dispatch")

    async def _settle(
        self, message: Claimed, write_back: WriteBack | None, error: Exception | None
    ) -> str:
        now = self.clock.now()
        mine = (
            OutboxMessage.id == message.id,
            OutboxMessage.lease_until == message.lease_until,
            OutboxMessage.done_at.is_(None),
        )
        values: dict[str, Any] = {"lease_until": None}
        if error is None:
            outcome = "done"
            values |= {"done_at": now, "last_error": ""}
        else:
            values["last_error"] = f"{type(error).__name__}: {error}"[:_MAX_ERROR]
            dead = isinstance(error, PermanentError) or message.attempts >= self.max_attempts
            outcome = "dead" if dead else "retry"
            if dead:
                values["dead_at"] = now
            else:
                values["next_attempt_at"] = now + self.backoff(message.attempts)
        async with self.sessionmaker() as db:
            result = await db.execute(update(OutboxMessage).where(*mine).values(**values))
            if _rowcount(result) != 1:
                await db.rollback()
                log.warning("outbox lease lost", key=message.key, topic=message.topic)
                return "lost"
            if write_back is not None:
                await write_back(db)
            await db.commit()
        log_method = log.info if error is None else log.warning
        log_method(
            "outbox message " + outcome,
            key=message.key,
            topic=message.topic,
            attempts=message.attempts,
            error=values.get("last_error") or None,
        )
        return outcome


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        OutboxMessage.done_at.is_(None),
        OutboxMessage.dead_at.is_(None),
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
    )


def _rowcount(result: Any) -> int:
    """Rows an UPDATE touched (a CursorResult, whatever the static type says)."""
    return int(result.rowcount) if isinstance(result, CursorResult) else 0
