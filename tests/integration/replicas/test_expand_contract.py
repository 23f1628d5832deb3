"""Expand/contract: during a rolling upgrade the previous release's replicas run against
the new schema, so the newest migration may only add (tables, nullable or defaulted
columns, indexes); it never drops, renames or retypes what the previous head had. A
contraction ships one release later, once no replica reads the old shape
(docs/upgrades.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from control_plane.db.engine import make_engine
from control_plane.db.migrate import alembic_config, upgrade
from tests.fixtures.throwaway_db import throwaway_postgres

pytestmark = [pytest.mark.postgres]

# Revisions that contract on purpose (the release before them no longer reads what they
# remove, checked in review); the test lets them through.
CONTRACTIONS: frozenset[str] = frozenset()

Shape = dict[str, dict[str, tuple[str, bool, bool]]]


@pytest.fixture
def fresh_url(database_url: str) -> Iterator[str]:
    with throwaway_postgres(database_url, "expand") as url:
        yield url


def _shape(url: str) -> Shape:
    """Every table's columns: (type as compiled, nullable, has a server default)."""

    def look(conn: Connection) -> Shape:
        inspector = inspect(conn)
        return {
            table: {
                c["name"]: (
                    str(c["type"].compile(conn.dialect)),
                    bool(c["nullable"]),
                    c.get("default") is not None,
                )
                for c in inspector.get_columns(table)
            }
            for table in inspector.get_table_names()
        }

    async def run() -> Shape:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(look)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _previous_head() -> tuple[str, Any]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    (head,) = script.get_heads()
    return head, script.get_revision(head).down_revision


class TestNewestMigration:
    def test_only_expands_what_the_previous_release_reads(self, fresh_url: str) -> None:
        head, previous = _previous_head()
        assert isinstance(previous, str), f"{head} must follow exactly one revision"
        if head in CONTRACTIONS:
            pytest.skip(f"{head} is a planned contraction")
        upgrade(fresh_url, previous)
        before = _shape(fresh_url)
        upgrade(fresh_url, head)
        after = _shape(fresh_url)

        dropped = sorted(set(before) - set(after))
        assert dropped == [], f"{head} drops tables the previous release uses"
        for table, columns in before.items():
            gone = sorted(set(columns) - set(after[table]))
            assert gone == [], f"{head} drops or renames {table}.{gone}"
            changed = {c: (columns[c], after[table][c]) for c in columns
                       if columns[c][0] != after[table][c][0]}  # fmt: skip
            assert changed == {}, f"{head} retypes columns of {table}"
            stricter = [c for c in columns if columns[c][1] and not after[table][c][1]]
            assert stricter == [], f"{head} makes {table}.{stricter} NOT NULL"
            # The previous release inserts rows without the new columns.
            required = [c for c, (_, nullable, default) in after[table].items()
                        if c not in columns and not nullable and not default]  # fmt: skip
            assert required == [], f"{head} adds {table}.{required} NOT NULL without a default"
