"""A PostgreSQL backup restores whole: pg_dump -Fc, pg_restore into a fresh database, the
same rows and audit chains that still verify (docs/operations.md, "Backup and restore")."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, text

from billing.registry import metadata
from control_plane.audit import chain_name, verify_chain
from control_plane.audit.store import entries, record
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.db.migrate import upgrade
from tests.conftest import DEFAULT_PG, need_peer

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ORGS = ("org_backup_a", "org_backup_b", None)  # None: the provider's own chain
REGION = "ca-qc-1"


def _server() -> tuple[str, str, str]:
    """Host, port and user of the test PostgreSQL (trust auth)."""
    url = urlsplit(os.environ.get("CP_TEST_DATABASE_URL", DEFAULT_PG))
    return url.hostname or "127.0.0.1", str(url.port or 5432), url.username or "postgres"


def _pg(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    host, port, user = _server()
    return subprocess.run(
        [tool, "-h", host, "-p", port, "-U", user, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture
def databases(db_kind: str) -> Iterator[tuple[str, str]]:
    """Two fresh, uniquely named databases (source and restore target), dropped after."""
    if db_kind != "postgres":
        pytest.skip("pg_dump/pg_restore back up PostgreSQL only (run with --db=postgres)")
    missing = [
        tool for tool in ("pg_dump", "pg_restore", "createdb", "dropdb") if not shutil.which(tool)
    ]
    need_peer(f"PostgreSQL client tools missing: {missing}" if missing else None)
    suffix = secrets.token_hex(4)
    names = (f"cp_backup_src_{suffix}", f"cp_backup_dst_{suffix}")
    host, port, user = _server()
    for name in names:
        _pg("createdb", name)
    try:
        yield tuple(f"postgresql://{user}@{host}:{port}/{name}" for name in names)  # type: ignore[misc]
    finally:
        for name in names:
            _pg("dropdb", "--if-exists", "--force", name)


async def _seed(url: str) -> None:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as db:
            for n in range(30):
                org_id = ORGS[n % len(ORGS)]
                await record(
                    db,
                    org_id=org_id,
                    region=REGION,
                    actor_kind="user",
                    actor_id="usr_backup",
                    action="projects.create",
                    target_type="project",
                    target_id=f"prj_{n}",
                    request_id=f"req_{n}",
                    source_address="203.0.113.7",
                    outcome="success",
                    payload={"name": f"project {n}", "note": "é ü ✓"},
                    at=T0 + timedelta(seconds=n),
                )
            await db.commit()
    finally:
        await engine.dispose()


async def _snapshot(url: str) -> tuple[dict[str, int], dict[str, list[object]]]:
    """Rows per table, and every audit chain (verified) as stored."""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as db:
            counts = {
                table.name: (await db.execute(select(func.count()).select_from(table))).scalar_one()
                for table in metadata.sorted_tables
            }
            version = (await db.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            counts["alembic_version:" + str(version)] = 1
            chains: dict[str, list[object]] = {}
            for org_id in ORGS:
                chain = chain_name(org_id, REGION)
                stored = await entries(db, chain)
                assert verify_chain(stored) is None, chain
                chains[chain] = list(stored)
            return counts, chains
    finally:
        await engine.dispose()


class TestBackupRestore:
    async def test_a_custom_format_dump_restores_every_row_and_intact_chains(
        self, databases: tuple[str, str], tmp_path: Path
    ) -> None:
        source, target = databases
        await asyncio.to_thread(upgrade, source)  # Alembic runs its own event loop
        await _seed(source)
        before = await _snapshot(source)

        dump = tmp_path / "control-plane.dump"
        _pg("pg_dump", "-Fc", "--no-owner", "-f", str(dump), urlsplit(source).path.lstrip("/"))
        _pg(
            "pg_restore",
            "--no-owner",
            "--exit-on-error",
            "-d",
            urlsplit(target).path.lstrip("/"),
            str(dump),
        )
        after = await _snapshot(target)

        counts, chains = after
        assert counts == before[0]
        assert sum(len(c) for c in chains.values()) == 30
        assert chains == before[1]
