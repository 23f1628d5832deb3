"""The stored ledger: contiguous, verifiable chains per (organization, region), safe under
concurrent appenders, and append-only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit import ProblemKind, chain_name, verify_chain
from control_plane.audit.chain import AuditEntry
from control_plane.audit.store import LedgerInconsistent, NewEntry, entries, record, record_many
from control_plane.db.engine import make_engine, make_sessionmaker

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


async def _record(
    db: AsyncSession, n: int, org_id: str | None = "org_a", **over: Any
) -> AuditEntry:
    fields: dict[str, Any] = {
        "org_id": org_id,
        "region": "ca-qc-1",
        "actor_kind": "user",
        "actor_id": "usr_1",
        "action": "projects.create",
        "target_type": "project",
        "target_id": f"prj_{n}",
        "request_id": f"req_{n}",
        "source_address": "203.0.113.7",
        "outcome": "success",
        "payload": {"name": f"project {n}"},
        "at": T0 + timedelta(seconds=n),
    }
    fields.update(over)
    return await record(db, **fields)


class TestRecord:
    async def test_appends_number_one_chain_from_one_and_verify(self, db: AsyncSession) -> None:
        written = [await _record(db, n) for n in range(5)]
        await db.commit()

        stored = await entries(db, chain_name("org_a", "ca-qc-1"))

        assert [e.seq for e in stored] == [1, 2, 3, 4, 5]
        assert stored == written
        assert stored[0].at == "2026-03-01T12:00:00.123456Z"
        assert verify_chain(stored) is None

    async def test_appends_in_later_transactions_continue_the_chain(self, db: AsyncSession) -> None:
        await _record(db, 1)
        await db.commit()
        await _record(db, 2)
        await db.commit()

        stored = await entries(db, "org_a/ca-qc-1")

        assert [e.seq for e in stored] == [1, 2]
        assert verify_chain(stored) is None

    async def test_each_organization_and_region_has_a_chain_of_its_own(
        self, db: AsyncSession
    ) -> None:
        await _record(db, 1, org_id="org_a")
        await _record(db, 2, org_id="org_b")
        await _record(db, 3, org_id="org_a", region="se-north-1")
        await _record(db, 4, org_id=None, actor_kind="operator", action="nodes.drain")
        await _record(db, 5, org_id="org_a")
        await db.commit()

        chains = {
            name: await entries(db, name)
            for name in ("org_a/ca-qc-1", "org_b/ca-qc-1", "org_a/se-north-1", "_provider/ca-qc-1")
        }

        assert {name: [e.seq for e in got] for name, got in chains.items()} == {
            "org_a/ca-qc-1": [1, 2],
            "org_b/ca-qc-1": [1],
            "org_a/se-north-1": [1],
            "_provider/ca-qc-1": [1],
        }
        assert all(verify_chain(got) is None for got in chains.values())

    async def test_a_rolled_back_transaction_leaves_no_entry_and_no_gap(
        self, db: AsyncSession
    ) -> None:
        await _record(db, 1)
        await db.commit()
        await _record(db, 2)
        await db.rollback()
        await _record(db, 3)
        await db.commit()

        stored = await entries(db, "org_a/ca-qc-1")

        assert [(e.seq, e.target_id) for e in stored] == [(1, "prj_1"), (2, "prj_3")]
        assert verify_chain(stored) is None

    async def test_reading_after_a_seq_returns_the_rest_in_pages(self, db: AsyncSession) -> None:
        for n in range(6):
            await _record(db, n)
        await db.commit()

        page = await entries(db, "org_a/ca-qc-1", after_seq=2, limit=3)

        second = (await entries(db, "org_a/ca-qc-1", after_seq=1, limit=1))[0]
        assert [e.seq for e in page] == [3, 4, 5]
        assert verify_chain(page, first_seq=3, prev_hash=second.entry_hash) is None

    async def test_concurrent_appenders_on_one_chain_make_no_gap_and_no_fork(
        self, db: AsyncSession, database_url: str
    ) -> None:
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)

        async def one(n: int) -> None:
            async with sessions() as session:
                await _record(session, n)
                await session.commit()

        try:
            await asyncio.gather(*(one(n) for n in range(16)))
        finally:
            await engine.dispose()

        stored = await entries(db, "org_a/ca-qc-1")
        assert [e.seq for e in stored] == list(range(1, 17))
        assert sorted(e.target_id or "" for e in stored) == sorted(f"prj_{n}" for n in range(16))
        assert verify_chain(stored) is None


def _new(n: int, org_id: str | None = "org_a", **over: Any) -> NewEntry:
    fields: dict[str, Any] = {
        "org_id": org_id,
        "region": "ca-qc-1",
        "actor_kind": "user",
        "actor_id": "usr_1",
        "action": "projects.create",
        "target_type": "project",
        "target_id": f"prj_{n}",
        "request_id": f"req_{n}",
        "source_address": "203.0.113.7",
        "outcome": "success",
        "payload": {"name": f"project {n}"},
        "at": T0 + timedelta(seconds=n),
    }
    fields.update(over)
    return NewEntry(**fields)


class TestRecordMany:
    async def test_appends_each_chain_in_the_order_given_and_returns_entries_in_that_order(
        self, db: AsyncSession
    ) -> None:
        await _record(db, 0, org_id="org_b")
        batch = [_new(1), _new(2, org_id="org_b"), _new(3), _new(4, org_id=None), _new(5)]

        written = await record_many(db, batch)
        await db.commit()

        assert [(e.chain, e.seq, e.target_id) for e in written] == [
            ("org_a/ca-qc-1", 1, "prj_1"),
            ("org_b/ca-qc-1", 2, "prj_2"),
            ("org_a/ca-qc-1", 2, "prj_3"),
            ("_provider/ca-qc-1", 1, "prj_4"),
            ("org_a/ca-qc-1", 3, "prj_5"),
        ]
        for chain in ("org_a/ca-qc-1", "org_b/ca-qc-1", "_provider/ca-qc-1"):
            stored = await entries(db, chain)
            mine = [e for e in written if e.chain == chain]
            assert stored[-len(mine) :] == mine
            assert verify_chain(stored) is None

    async def test_a_batch_hashes_exactly_as_single_records_would(self, db: AsyncSession) -> None:
        batch = [_new(1), _new(2)]
        written = await record_many(db, batch)
        await db.rollback()

        one_by_one = [await _record(db, 1), await _record(db, 2)]

        assert written == one_by_one

    async def test_an_empty_batch_writes_nothing(self, db: AsyncSession) -> None:
        assert await record_many(db, []) == []
        assert await entries(db, "org_a/ca-qc-1") == []

    async def test_a_rolled_back_batch_leaves_no_entry_and_no_gap(self, db: AsyncSession) -> None:
        await record_many(db, [_new(1), _new(2, org_id="org_b")])
        await db.rollback()
        await record_many(db, [_new(3), _new(4, org_id="org_b")])
        await db.commit()

        assert [(e.seq, e.target_id) for e in await entries(db, "org_a/ca-qc-1")] == [(1, "prj_3")]
        assert [(e.seq, e.target_id) for e in await entries(db, "org_b/ca-qc-1")] == [(1, "prj_4")]

    async def test_concurrent_batches_over_shared_chains_neither_deadlock_nor_fork(
        self, db: AsyncSession, database_url: str
    ) -> None:
        """Each batch names the same chains in a different order, including chains that do
        not exist yet: heads are created and locked in chain order, so no batch waits on
        another in a cycle."""
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        orgs = ["org_a", "org_b", "org_c", None]

        async def one(n: int) -> None:
            rotated = orgs[n % 4 :] + orgs[: n % 4]
            async with sessions() as session:
                await record_many(session, [_new(10 * n + i, org) for i, org in enumerate(rotated)])
                await session.commit()

        try:
            await asyncio.gather(*(one(n) for n in range(12)))
        finally:
            await engine.dispose()

        for org in orgs:
            stored = await entries(db, chain_name(org, "ca-qc-1"))
            assert [e.seq for e in stored] == list(range(1, 13))
            assert verify_chain(stored) is None


class TestLedgerInconsistent:
    async def test_a_head_that_names_no_stored_entry_stops_the_append_and_writes_nothing(
        self, db: AsyncSession
    ) -> None:
        await _record(db, 1)
        await db.commit()
        await db.execute(
            text("UPDATE audit_chain_head SET entry_hash = :h WHERE chain = 'org_a/ca-qc-1'"),
            {"h": "f" * 64},
        )
        await db.commit()

        with pytest.raises(LedgerInconsistent, match="org_a/ca-qc-1: head seq 1 does not match"):
            await record_many(db, [_new(2, org_id="org_b"), _new(3)])
        await db.rollback()

        assert [e.seq for e in await entries(db, "org_a/ca-qc-1")] == [1]
        assert await entries(db, "org_b/ca-qc-1") == []

    async def test_a_head_ahead_of_the_stored_entries_stops_a_single_record(
        self, db: AsyncSession
    ) -> None:
        await _record(db, 1)
        await db.commit()
        await db.execute(text("UPDATE audit_chain_head SET seq = 2"))
        await db.commit()

        with pytest.raises(LedgerInconsistent, match="head seq 2 does not match"):
            await _record(db, 2)
        await db.rollback()

        assert [e.seq for e in await entries(db, "org_a/ca-qc-1")] == [1]


class TestAppendOnly:
    async def test_an_entry_cannot_be_changed_unnoticed(
        self, db: AsyncSession, db_kind: str
    ) -> None:
        """PostgreSQL refuses the change outright (trigger); on SQLite, which has no
        trigger, the change lands and the hash chain shows exactly where."""
        for n in range(3):
            await _record(db, n)
        await db.commit()

        if db_kind == "postgres":
            with pytest.raises(DBAPIError, match="append-only"):
                await db.execute(text("UPDATE audit_entry SET outcome = 'denied' WHERE seq = 2"))
            await db.rollback()
            with pytest.raises(DBAPIError, match="append-only"):
                await db.execute(text("DELETE FROM audit_entry"))
            await db.rollback()
            stored = await entries(db, "org_a/ca-qc-1")
            assert [(e.seq, e.outcome) for e in stored] == [(n, "success") for n in (1, 2, 3)]
            assert verify_chain(stored) is None
        else:
            await db.execute(text("UPDATE audit_entry SET outcome = 'denied' WHERE seq = 2"))
            await db.commit()
            problem = verify_chain(await entries(db, "org_a/ca-qc-1"))
            assert problem is not None
            assert (problem.seq, problem.kind) == (2, ProblemKind.MODIFIED)

    def test_the_store_offers_no_way_to_change_or_remove_an_entry(self) -> None:
        from control_plane.audit import store

        assert set(store.__all__) == {
            "LedgerInconsistent",
            "NewEntry",
            "entries",
            "record",
            "record_many",
            "write_many",  # record_many on a bare connection (the group-commit appender)
        }
