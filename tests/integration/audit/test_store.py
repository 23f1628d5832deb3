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
from control_plane.audit.store import entries, record
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

        assert set(store.__all__) == {"LedgerInconsistent", "entries", "record"}
