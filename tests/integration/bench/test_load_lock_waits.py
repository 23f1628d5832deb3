"""bench.load's lock-wait sampler against the real PostgreSQL peer, in both suites: it reads
PostgreSQL's own views, so it gets a database of its own on the peer whichever database
the suite runs on (nothing else runs there, so every wait it sees is the test's)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.load import LockWaits
from control_plane.db.engine import make_engine
from tests.conftest import DEFAULT_PG, need_peer

WAITING = "SELECT pg_advisory_lock(4242)"


@pytest.fixture
async def own_database() -> AsyncIterator[str]:
    """A fresh database on the PostgreSQL peer, dropped after."""
    server = make_url(os.environ.get("CP_TEST_DATABASE_URL", DEFAULT_PG))
    name = f"cp_lock_waits_{secrets.token_hex(4)}"
    admin = make_engine(server.set(database="postgres").render_as_string(hide_password=False))
    try:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OSError as exc:  # refused or unreachable: the peer is missing
        await admin.dispose()
        need_peer(f"PostgreSQL at {server.host}:{server.port} unreachable: {exc}")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_the_statement_waiting_on_a_lock_is_named_with_its_share_of_samples(
    own_database: str,
) -> None:
    engine = make_engine(own_database)
    locks = LockWaits(own_database)
    try:
        async with engine.connect() as holder, engine.connect() as waiter:
            await holder.execute(text(WAITING))
            waiting = asyncio.create_task(waiter.execute(text(WAITING)))
            sampler = asyncio.create_task(locks.run())
            await asyncio.sleep(0.3)  # the waiter waits all along: ~6 samples
            await holder.execute(text("SELECT pg_advisory_unlock(4242)"))
            await waiting
            await asyncio.sleep(0.2)  # nobody waits any more: ~4 samples
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            await waiter.execute(text("SELECT pg_advisory_unlock(4242)"))
    finally:
        await engine.dispose()

    figures = locks.figures()
    # Only the waiter: not the holder (idle), nor the sampler's own connection.
    assert list(figures) == [WAITING]
    assert 0.3 <= figures[WAITING] < 1.0  # waiting in part of the samples, not all
