"""Group commit for ledger entries that have no transaction of their own to ride in.

Most entries are written inside the transaction of the change they record
(``control_plane.audit.store.record``), and stay there. Some are not part of any change:
refused and failed requests, failed sign-ins (``FailedRequestAudit``). Each of those used
to cost a transaction of its own; under load the transactions, not the entries, are the
limit (one Python process manages about 3,000 empty PostgreSQL transactions a second).

:class:`LedgerAppender` shares transactions between such entries, as Trillian's Tessera
does for its log: ``append`` queues the entry and waits; a single flusher task takes
whatever is queued (at most ``max_batch`` entries), writes it with
``store.write_many`` in ONE transaction, commits, and only then answers every caller of
that batch with its own stored entry. There is no timer: when idle, the flusher writes as
soon as an entry arrives; under load, entries queue while the previous batch commits, so
batches grow with the load and the commit cost is shared.

Guarantees:

* ``append`` returns only once the transaction holding the entry has committed;
* a batch is written whole or not at all: if its transaction fails, every caller of that
  batch gets the exception, and none of its entries is stored (nothing is acknowledged
  that did not commit);
* entries of one chain are stored in the order ``append`` was called (the queue is
  first-in first-out and a batch keeps its order);
* an entry that has no encoding (an action that does not look like ``domain.verb``, a
  float in the payload...) fails only its own caller: ``record_many`` refuses it before
  writing, and the flusher then writes that batch's entries one transaction each.

Cancelling a caller withdraws its entry if no batch has taken it yet; once taken, the
entry is written (or not) with its batch. ``close`` stops queueing, writes what is
queued and stops the flusher; if ``close`` itself is cancelled, the batch being written
and the entries still queued fail with :class:`AppenderStopped` (the batch's outcome is
then unknown: it may have committed). Without a running flusher (an app used without its
lifespan, or after ``close``), ``append`` writes the entry in a transaction of its own,
with the same guarantees.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from control_plane.audit.chain import AuditEntry
from control_plane.audit.store import NewEntry, write_many

__all__ = ["DEFAULT_MAX_BATCH", "AppenderStopped", "LedgerAppender"]

log = structlog.get_logger("control_plane.audit")

DEFAULT_MAX_BATCH = 256
_STOPPED_WRITING = "the ledger appender stopped while writing this entry; it may be stored or not"


class AppenderStopped(RuntimeError):
    """The appender stopped before this entry's batch was known to be committed."""


@dataclass(slots=True)
class _Waiter:
    entry: NewEntry
    done: asyncio.Future[AuditEntry]


class LedgerAppender:
    """Appends entries in shared transactions and answers each caller after the commit.

    ``batches_committed`` and ``entries_committed`` count what the flusher wrote (entries
    written alone, without a running flusher, are not counted).
    """

    def __init__(self, engine: AsyncEngine, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        # Transactions on bare connections: an ORM session's bookkeeping would cost about
        # a tenth of a batch's CPU and nothing here needs it.
        self._engine = engine
        self._max_batch = max_batch
        self._queue: deque[_Waiter] = deque()
        self._work = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self.batches_committed = 0
        self.entries_committed = 0

    @property
    def running(self) -> bool:
        """Whether appends on the current event loop are batched by the flusher."""
        flusher = self._flusher
        if flusher is None or flusher.done() or self._closing:
            return False
        try:
            return flusher.get_loop() is asyncio.get_running_loop()
        except RuntimeError:
            return False

    def start(self) -> None:
        """Start the flusher on the running event loop (the app's lifespan calls this)."""
        if self._flusher is not None and not self._flusher.done():
            raise RuntimeError("the ledger appender is already running")
        self._closing = False
        self._work = asyncio.Event()
        self._flusher = asyncio.create_task(self._run(), name="audit-ledger-appender")
        self._flusher.add_done_callback(self._fail_queued)

    async def close(self) -> None:
        """Stop queueing, write every queued entry, then stop the flusher."""
        flusher = self._flusher
        if flusher is None:
            return
        self._closing = True
        self._work.set()
        try:
            # Awaited directly: if close() is cancelled, so is the flusher (see _write).
            await flusher
        finally:
            self._flusher = None

    async def append(self, new: NewEntry) -> AuditEntry:
        """Store ``new`` and return it as stored, once its transaction has committed."""
        if not self.running:
            return await self._write_alone(new)
        waiter = _Waiter(new, asyncio.get_running_loop().create_future())
        self._queue.append(waiter)
        self._work.set()
        # Cancelling this await cancels the future; the flusher skips cancelled waiters.
        return await waiter.done

    async def _write_alone(self, new: NewEntry) -> AuditEntry:
        async with self._engine.connect() as conn:
            (written,) = await write_many(conn, (new,))
            await conn.commit()
        return written

    async def _run(self) -> None:
        while True:
            batch = self._take()
            if batch:
                await self._flush(batch)
            elif self._closing:
                return
            else:
                self._work.clear()
                await self._work.wait()

    def _take(self) -> list[_Waiter]:
        """Up to max_batch queued waiters still waiting, in arrival order."""
        batch: list[_Waiter] = []
        while self._queue and len(batch) < self._max_batch:
            waiter = self._queue.popleft()
            if not waiter.done.done():  # its caller was cancelled: withdrawn
                batch.append(waiter)
        return batch

    async def _flush(self, batch: list[_Waiter]) -> None:
        try:
            written = await self._write(batch)
        except ValueError as exc:
            if len(batch) == 1:
                self._failed(batch, exc)
                return
            # An entry has no encoding (a float in its payload, a malformed action):
            # record_many raised before writing and the transaction rolled back. Write the
            # entries one at a time, in order, so only that entry's caller fails.
            for waiter in batch:
                if not waiter.done.done():
                    await self._flush([waiter])
            return
        except Exception as exc:  # every caller of the batch gets it; the flusher goes on
            self._failed(batch, exc)
            return
        self.batches_committed += 1
        self.entries_committed += len(written)
        for waiter, entry in zip(batch, written, strict=True):
            if not waiter.done.done():
                waiter.done.set_result(entry)

    def _failed(self, batch: list[_Waiter], exc: Exception) -> None:
        log.warning("audit ledger batch not written", entries=len(batch), error=type(exc).__name__)
        _fail(batch, exc)

    async def _write(self, batch: list[_Waiter]) -> list[AuditEntry]:
        """One transaction for the whole batch; rolled back (on leaving) if it fails."""
        async with self._engine.connect() as conn:
            try:
                written = await write_many(conn, [w.entry for w in batch])
                await conn.commit()
            except asyncio.CancelledError:
                # Answer now: the rollback on the way out may first wait for a lock.
                _fail(batch, AppenderStopped(_STOPPED_WRITING))
                raise
        return written

    def _fail_queued(self, _flusher: asyncio.Task[None]) -> None:
        """The flusher ended: nobody will write what is still queued."""
        queued = list(self._queue)
        self._queue.clear()
        _fail(queued, AppenderStopped("the ledger appender stopped before writing this entry"))


def _fail(waiters: list[_Waiter], exc: BaseException) -> None:
    for waiter in waiters:
        if not waiter.done.done():
            waiter.done.set_exception(exc)
