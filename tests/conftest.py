"""Shared fixtures: one database per run (SQLite or PostgreSQL via ``--db``), a fresh app
per test, tables emptied between tests, and typed factories in ``tests/fixtures``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.app import create_app
from control_plane.clock import OffsetClock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.db.migrate import downgrade, upgrade
from control_plane.settings import Settings
from tests.fixtures.empty_db import empty_tables

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="database the suite runs against",
    )


def peers_required() -> bool:
    return os.environ.get("CP_REQUIRE_PEERS") == "1"


def need_peer(reason: str | None) -> None:
    """Skip (locally) or fail (CI, CP_REQUIRE_PEERS=1) when a real peer is missing."""
    if reason is None:
        return
    if peers_required():
        pytest.fail(f"required test peer missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--db"))


@pytest.fixture(scope="session")
def database_url(db_kind: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated, empty database for the whole run."""
    if db_kind == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        url = os.environ.get("CP_TEST_DATABASE_URL", DEFAULT_PG)
        need_peer(_postgres_unreachable(url))
        _reset_postgres(url)
    upgrade(url)
    return url


def _postgres_unreachable(url: str) -> str | None:
    async def probe() -> None:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure to connect means the peer is missing
        return f"PostgreSQL at {url} unreachable: {type(exc).__name__}"
    return None


def _reset_postgres(url: str) -> None:
    """Start from an empty schema whatever an earlier run left behind."""

    async def reset() -> None:
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        finally:
            await engine.dispose()

    asyncio.run(reset())


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        key_dir=tmp_path / "keys",
        sim_dir=tmp_path / "sim",
        model_store_root=tmp_path / "models",
        triton_dir=tmp_path / "triton",
        reconciler_enabled=False,
        autoscale_enabled=False,
        environment="test",
        cookie_secure=False,
        api_key_cache_seconds=2.0,
        login_rate_per_minute=1000,
    )


@pytest.fixture
def clock() -> OffsetClock:
    """The app's clock. ``CP_TEST_SHIFT_HOURS`` (a diagnostic, never set in CI) moves it
    to another time of day, to find tests that only pass at some hours."""
    made = OffsetClock()
    made.advance(float(os.environ.get("CP_TEST_SHIFT_HOURS", "0")) * 3600)
    return made


@pytest.fixture
async def app(settings: Settings, clock: OffsetClock) -> AsyncIterator[Litestar]:
    application = create_app(settings, clock=clock, configure_logs=False)
    yield application
    await _empty_tables(application)


async def _empty_tables(application: Litestar) -> None:
    engine = application.state.engine
    async with engine.begin() as conn:
        await empty_tables(conn)
    await engine.dispose()


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
async def db(app: Litestar) -> AsyncIterator[AsyncSession]:
    """A session on the app's database for arranging and checking state (commit yourself).

    It has an engine of its own: the test client runs the app in another event loop, and
    asyncpg connections cannot move between loops."""
    engine = make_engine(app.state.settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            yield session
    finally:
        await engine.dispose()


__all__ = ["downgrade", "need_peer", "peers_required"]
