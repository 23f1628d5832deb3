"""Migrations: empty → head matches the models, head → base leaves nothing, then up again.

Runs on the database chosen with ``--db``, in a throwaway database of its own (a temporary
SQLite file, or a PostgreSQL database created and dropped here), never the suite's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from billing.registry import metadata
from control_plane.db.engine import make_engine
from control_plane.db.migrate import current_heads, downgrade, upgrade
from tests.fixtures.throwaway_db import throwaway_postgres


@pytest.fixture
def fresh_url(db_kind: str, database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the selected kind, removed afterwards."""
    if db_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    with throwaway_postgres(database_url, "mig") as url:
        yield url


def _inspect(url: str) -> tuple[list[Any], set[str]]:
    """Differences between the live schema and the models, and the tables present."""

    def look(conn: Connection) -> tuple[list[Any], set[str]]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, metadata), set(inspect(conn).get_table_names())

    async def run() -> tuple[list[Any], set[str]]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(look)
        finally:
            await engine.dispose()

    return asyncio.run(run())


class TestMigrations:
    def test_there_is_a_single_head(self) -> None:
        assert len(current_heads()) == 1

    def test_upgrade_from_empty_gives_exactly_the_models_schema(self, fresh_url: str) -> None:
        upgrade(fresh_url)

        differences, tables = _inspect(fresh_url)

        assert differences == []
        assert tables == set(metadata.tables) | {"alembic_version"}

    def test_downgrade_to_base_removes_every_table_and_upgrade_works_again(
        self, fresh_url: str
    ) -> None:
        upgrade(fresh_url)

        downgrade(fresh_url, "base")

        assert _inspect(fresh_url)[1] <= {"alembic_version"}
        upgrade(fresh_url)
        differences, tables = _inspect(fresh_url)
        assert differences == []
        assert tables == set(metadata.tables) | {"alembic_version"}


class TestUsageRollupKeys:
    def test_existing_rollup_rows_are_rekeyed_both_ways(self, fresh_url: str) -> None:
        """0019 recomputes every key as the MD5 both Python and PostgreSQL compute, and its
        downgrade restores the BLAKE2b keys the earlier code looks rows up by."""
        import hashlib
        from datetime import UTC, datetime

        from control_plane.metering.rollup import RollupKey

        hour = datetime(2026, 11, 3, 14, tzinfo=UTC)
        dims = ("ca-qc-1", "h100", "slurm", "ten_x", "", "")
        old = "\x1f".join(["org_a", "", "gpu_seconds", hour.isoformat(), *dims])
        blake = hashlib.blake2b(old.encode(), digest_size=16).hexdigest()
        new = RollupKey("org_a", "", "gpu_seconds", hour, dims).digest
        upgrade(fresh_url, "0018")
        _run(fresh_url, text(
            "INSERT INTO usage_hourly (key, org_id, project_id, type, hour, region, gpu_model, "
            "tenancy_kind, tenancy, endpoint, model, value, events) VALUES (:key, 'org_a', '', "
            "'gpu_seconds', :hour, :r, :g, :k, :t, :e, :m, :v, 3)"),
            {"key": blake, "hour": hour.replace(tzinfo=None) if "sqlite" in fresh_url else hour,
             "r": dims[0], "g": dims[1], "k": dims[2], "t": dims[3], "e": dims[4], "m": dims[5],
             "v": 7200})  # fmt: skip

        upgrade(fresh_url)
        after = _keys(fresh_url)
        downgrade(fresh_url, "0018")
        back = _keys(fresh_url)

        assert new != blake
        assert (after, back) == ([new], [blake])


def _run(url: str, statement: Any, params: dict[str, Any]) -> None:
    async def run() -> None:
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(statement, params)
        finally:
            await engine.dispose()

    asyncio.run(run())


def _keys(url: str) -> list[str]:
    async def run() -> list[str]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return list((await conn.execute(text("SELECT key FROM usage_hourly"))).scalars())
        finally:
            await engine.dispose()

    return asyncio.run(run())
