"""Group commit: entries outside a change's transaction share transactions, yet each caller
is answered only once its entry is committed, and a failed batch fails all its callers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from control_plane.audit import chain_name, verify_chain
from control_plane.audit.appender import AppenderStopped, LedgerAppender
from control_plane.audit.chain import AuditEntry
from control_plane.audit.models import AuditEntryRow
from control_plane.audit.store import LedgerInconsistent, NewEntry, entries, record_many
from control_plane.db.engine import make_engine, make_sessionmaker

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
REGION = "ca-qc-1"


def _new(n: int, org_id: str | None = "org_a", **over: Any) -> NewEntry:
    fields: dict[str, Any] = {
        "org_id": org_id,
        "region": REGION,
        "actor_kind": "user",
        "actor_id": "usr_1",
        "action": "auth.login",
        "target_type": None,
        "target_id": f"t_{n}",
        "request_id": f"req_{n}",
        "source_address": "203.0.113.7",
        "outcome": "denied",
        "payload": {"status": 401, "n": n},
        "at": T0 + timedelta(milliseconds=n),
    }
    fields.update(over)
    return NewEntry(**fields)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The appender's own engine (pool of connections on this test's event loop)."""
    own = make_engine(database_url)
    try:
        yield own
    finally:
        await own.dispose()


@pytest.fixture
async def appender(engine: AsyncEngine, db: AsyncSession) -> AsyncIterator[LedgerAppender]:
    """A running appender; ``db`` (another engine) empties the tables afterwards."""
    running = LedgerAppender(engine, max_batch=8)
    running.start()
    try:
        yield running
    finally:
        await running.close()


async def _chain(db: AsyncSession, org_id: str | None) -> list[AuditEntry]:
    """The stored chain, read on a fresh snapshot."""
    await db.rollback()
    return await entries(db, chain_name(org_id, REGION))


class _Holder:
    """Another transaction that appended to a chain and has not committed: it holds the
    chain's head row (PostgreSQL) or the database's write lock (SQLite) until released."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._session = make_sessionmaker(engine)()

    async def hold(self, org_id: str) -> None:
        await record_many(self._session, [_new(0, org_id, target_id="held")])

    async def release(self) -> None:
        await self._session.commit()
        await self._session.close()


class TestConcurrentAppends:
    async def test_many_callers_over_many_orgs_are_all_committed_and_chains_verify(
        self, appender: LedgerAppender, db: AsyncSession
    ) -> None:
        orgs = [f"org_{i:02d}" for i in range(12)] + [None]
        rng = random.Random(7)  # not security-sensitive: spreads callers over the orgs

        async def caller(c: int) -> list[AuditEntry]:
            return [await appender.append(_new(100 * c + i, rng.choice(orgs))) for i in range(10)]

        answered = [e for got in await asyncio.gather(*(caller(c) for c in range(24))) for e in got]

        stored: list[AuditEntry] = []
        for org in orgs:
            chain = await _chain(db, org)
            assert [e.seq for e in chain] == list(range(1, len(chain) + 1))
            assert verify_chain(chain, chain=chain_name(org, REGION)) is None
            stored += chain
        assert len(stored) == 240
        assert sorted(stored, key=lambda e: e.entry_hash) == sorted(
            answered, key=lambda e: e.entry_hash
        )

    async def test_one_callers_entries_on_a_chain_follow_its_call_order(
        self, appender: LedgerAppender, db: AsyncSession
    ) -> None:
        """Fired without waiting in between, over more than one batch (max_batch 8), with
        another caller writing to the same chain meanwhile."""
        mine = [asyncio.ensure_future(appender.append(_new(n))) for n in range(30)]
        theirs = [appender.append(_new(1000 + n, actor_id="usr_2")) for n in range(10)]
        await asyncio.gather(*mine, *theirs)

        chain = await _chain(db, "org_a")
        assert [e.target_id for e in chain if e.actor_id == "usr_1"] == [
            f"t_{n}" for n in range(30)
        ]
        assert [e.seq for e in chain] == list(range(1, 41))
        assert verify_chain(chain) is None


class TestCommitBeforeAnswer:
    async def test_an_append_returns_only_once_its_entry_is_visible_to_other_sessions(
        self, appender: LedgerAppender, engine: AsyncEngine, db: AsyncSession
    ) -> None:
        holder = _Holder(engine)
        await holder.hold("org_a")
        pending = asyncio.ensure_future(appender.append(_new(1)))

        # The entry cannot commit while the other transaction holds the chain: the caller
        # is still waiting, and nothing of it is visible.
        done, _ = await asyncio.wait({pending}, timeout=0.3)
        assert not done
        assert await _chain(db, "org_a") == []

        await holder.release()
        answered = await pending

        stored = await _chain(db, "org_a")
        assert [(e.seq, e.target_id) for e in stored] == [(1, "held"), (2, "t_1")]
        assert stored[-1] == answered
        assert verify_chain(stored) is None

    async def test_close_writes_what_is_queued_before_it_returns(
        self, engine: AsyncEngine, db: AsyncSession
    ) -> None:
        appender = LedgerAppender(engine, max_batch=4)
        appender.start()
        holder = _Holder(engine)
        await holder.hold("org_a")
        waiting = [asyncio.ensure_future(appender.append(_new(n))) for n in range(10)]
        await asyncio.sleep(0.1)  # let the first batch reach the held chain
        closing = asyncio.ensure_future(appender.close())

        await holder.release()
        await closing
        answered = await asyncio.gather(*waiting)

        stored = await _chain(db, "org_a")
        assert [e.target_id for e in stored] == ["held", *(f"t_{n}" for n in range(10))]
        assert stored[1:] == answered
        assert not appender.running


class TestFailures:
    async def test_a_failed_batch_fails_every_caller_in_it_and_stores_none_of_it(
        self, appender: LedgerAppender, db: AsyncSession
    ) -> None:
        await appender.append(_new(1, "org_bad"))
        # Someone altered the ledger: org_bad's head names an entry that is not stored.
        await db.execute(
            text("UPDATE audit_chain_head SET entry_hash = :h WHERE chain = :c"),
            {"h": "f" * 64, "c": chain_name("org_bad", REGION)},
        )
        await db.commit()

        # Queued together while the flusher is idle: one batch over three chains.
        batch = [_new(2, "org_b"), _new(3, "org_bad"), _new(4, "org_c")]
        outcomes = await asyncio.gather(
            *(appender.append(e) for e in batch), return_exceptions=True
        )

        assert all(isinstance(o, LedgerInconsistent) for o in outcomes), outcomes
        assert await _chain(db, "org_b") == []
        assert await _chain(db, "org_c") == []
        assert [e.target_id for e in await _chain(db, "org_bad")] == ["t_1"]
        # The appender goes on with later batches.
        later = await appender.append(_new(5, "org_b"))
        assert (later.chain, later.seq) == (chain_name("org_b", REGION), 1)

    async def test_an_unwritable_entry_fails_only_its_own_caller(
        self, appender: LedgerAppender, db: AsyncSession
    ) -> None:
        good = [_new(1), _new(2, "org_b")]
        bad = _new(3, action="Not An Action")

        outcomes = await asyncio.gather(
            appender.append(good[0]), appender.append(bad), appender.append(good[1]),
            return_exceptions=True,
        )  # fmt: skip

        assert isinstance(outcomes[1], ValueError)
        assert [e.target_id for e in await _chain(db, "org_a")] == ["t_1"]
        assert [e.target_id for e in await _chain(db, "org_b")] == ["t_2"]

    async def test_a_caller_cancelled_before_its_batch_withdraws_its_entry(
        self, appender: LedgerAppender, engine: AsyncEngine, db: AsyncSession
    ) -> None:
        holder = _Holder(engine)
        await holder.hold("org_a")
        first = asyncio.ensure_future(appender.append(_new(1)))
        await asyncio.sleep(0.1)  # the first batch is now waiting on the held chain
        withdrawn = asyncio.ensure_future(appender.append(_new(2)))
        kept = asyncio.ensure_future(appender.append(_new(3)))
        await asyncio.sleep(0)
        withdrawn.cancel()

        await holder.release()
        await asyncio.gather(first, kept)

        assert withdrawn.cancelled()
        assert [e.target_id for e in await _chain(db, "org_a")] == ["held", "t_1", "t_3"]

    async def test_a_cancelled_close_fails_the_waiting_callers(
        self, engine: AsyncEngine, db: AsyncSession
    ) -> None:
        appender = LedgerAppender(engine, max_batch=2)
        appender.start()
        holder = _Holder(engine)
        await holder.hold("org_a")
        waiting = [asyncio.ensure_future(appender.append(_new(n))) for n in range(5)]
        await asyncio.sleep(0.1)
        closing = asyncio.ensure_future(appender.close())
        await asyncio.sleep(0)
        closing.cancel()
        # (SQLite's driver finishes the statement it is waiting in before it can roll back.)
        await holder.release()

        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        with pytest.raises(asyncio.CancelledError):
            await closing

        assert all(isinstance(o, AppenderStopped) for o in outcomes), outcomes
        stored = await _chain(db, "org_a")
        assert [e.target_id for e in stored] == ["held"]
        assert verify_chain(stored) is None


class TestWithoutFlusher:
    async def test_an_appender_that_is_not_running_writes_each_entry_alone(
        self, engine: AsyncEngine, db: AsyncSession
    ) -> None:
        idle = LedgerAppender(engine)

        answered = await idle.append(_new(1))

        assert not idle.running
        assert await _chain(db, "org_a") == [answered]


class TestRefusedRequests:
    async def test_concurrent_failed_sign_ins_are_each_recorded_before_the_answer(
        self, client: AsyncTestClient[Litestar], db: AsyncSession
    ) -> None:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/auth/login",
                    json={"email": f"nobody-{n}@example.test", "password": "wrong-password"},
                )
                for n in range(20)
            )
        )

        assert {a.status_code for a in answers} == {401}
        request_ids = [a.headers["x-request-id"] for a in answers]
        found = (
            (
                await db.execute(
                    select(AuditEntryRow).where(AuditEntryRow.request_id.in_(request_ids))
                )
            )
            .scalars()
            .all()
        )
        assert sorted(e.request_id or "" for e in found) == sorted(request_ids)
        assert {(e.action, e.outcome) for e in found} == {("identity.login", "denied")}
        chain = await entries(db, found[0].chain)
        assert verify_chain(chain, chain=found[0].chain) is None
