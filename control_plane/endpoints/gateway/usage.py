"""Token usage leaving the gateway: counted per request, pre-aggregated per (API key,
model, window) in memory, flushed as usage events with idempotent ids.

Exactly once: a flush first *cuts* the open counters into a batch whose event ids are
fixed (``<instance>:<batch>:<n>:<type>``); the batch stays until a flush of it has
committed. A failure anywhere (the database away, a crash between the commit and the
acknowledgement) leaves the batch in place, and the next flush writes the same ids again:
the metering store ignores ids it already holds, so nothing is counted twice and nothing
is dropped. Event volume grows with keys x models x windows, not with requests.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import Clock
from control_plane.metering.service import NewUsage, record_usage
from control_plane.periodic import every

__all__ = ["UsageKey", "UsageMeter"]

log = structlog.get_logger("control_plane.gateway")
SOURCE = "gateway"


@dataclass(frozen=True, slots=True)
class UsageKey:
    org_id: str
    project_id: str | None
    api_key_id: str
    endpoint_id: str
    model: str  # the served version (endpoint-vN)
    region: str
    window_start: datetime


@dataclass
class _Counts:
    tokens_in: int = 0
    tokens_out: int = 0
    requests: int = 0


@dataclass
class _Batch:
    number: int
    counts: dict[UsageKey, _Counts]
    events: list[NewUsage] = field(default_factory=list)


class UsageMeter:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        window: timedelta = timedelta(minutes=1),
        instance: str | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._window = window
        self.instance = instance or f"gw_{secrets.token_hex(6)}"
        self._open: dict[UsageKey, _Counts] = {}
        self._pending: list[_Batch] = []
        self._batches = 0
        self._lock = asyncio.Lock()
        # Test seam: called after a batch's transaction committed, before it is dropped.
        self.after_commit: Callable[[], Awaitable[None]] | None = None

    def window_of(self, at: datetime) -> datetime:
        seconds = int(self._window.total_seconds())
        epoch = int(at.timestamp())
        return datetime.fromtimestamp(epoch - epoch % seconds, tz=at.tzinfo)

    def add(self, key: UsageKey, tokens_in: int, tokens_out: int) -> None:
        counts = self._open.get(key)
        if counts is None:
            counts = self._open[key] = _Counts()
        counts.tokens_in += tokens_in
        counts.tokens_out += tokens_out
        counts.requests += 1

    @property
    def unflushed(self) -> int:
        """Counters not yet stored (open and cut)."""
        return len(self._open) + sum(len(b.counts) for b in self._pending)

    async def flush(self, sessionmaker: async_sessionmaker[AsyncSession] | None = None) -> int:
        """Store everything counted so far; returns how many events were new. Raises when
        the store failed (the batch stays and is written by the next flush). ``sessionmaker``
        overrides the meter's own (a caller on another event loop)."""
        factory = sessionmaker or self._sessionmaker
        async with self._lock:
            if self._open:
                self._batches += 1
                batch = _Batch(self._batches, self._open)
                self._open = {}
                batch.events = self._events(batch)
                self._pending.append(batch)
            stored = 0
            while self._pending:
                batch = self._pending[0]
                async with factory() as db:
                    duplicates = await record_usage(db, batch.events, self._clock.now())
                    await db.commit()
                if self.after_commit is not None:
                    await self.after_commit()
                stored += len(batch.events) - duplicates
                if duplicates:
                    log.info("usage batch written again", batch=batch.number, duplicates=duplicates)
                self._pending.pop(0)
            return stored

    def _events(self, batch: _Batch) -> list[NewUsage]:
        events = []
        for n, (key, counts) in enumerate(batch.counts.items()):
            for kind, value in (("tokens_in", counts.tokens_in), ("tokens_out", counts.tokens_out)):
                events.append(
                    NewUsage(
                        source=SOURCE,
                        event_id=f"{self.instance}:{batch.number}:{n}:{kind}",
                        org_id=key.org_id,
                        project_id=key.project_id,
                        type=kind,
                        value=Decimal(value),
                        window_start=key.window_start,
                        window_end=key.window_start + self._window,
                        dimensions={
                            "api_key": key.api_key_id,
                            "endpoint": key.endpoint_id,
                            "model": key.model,
                            "region": key.region,
                            "requests": str(counts.requests),
                        },
                    )
                )
        return events

    async def run(self, seconds: float) -> None:
        """Flush every ``seconds`` until cancelled; a failed flush (its batch stays) is
        retried at the next tick, and a flush in flight finishes before the loop stops."""

        async def tick() -> None:
            await self.flush()

        await every(seconds, tick, name="gateway usage flush")
