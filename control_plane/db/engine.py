"""Engine and session factories for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from control_plane.settings import driver_url


def make_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """Create the async engine for a plain ``sqlite:///`` or ``postgresql://`` URL."""
    url = driver_url(database_url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _tune_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", False)
    return create_async_engine(url, **kwargs)


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers a trivial query (readiness probes)."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions never expire on commit, so DTOs can be built after the commit."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def make_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for safe (GET/HEAD) requests.

    On PostgreSQL they autocommit, saving the BEGIN/COMMIT round trips (each statement sees
    committed data; handlers of safe methods never write). On SQLite switching the
    connection's isolation level per checkout costs more than it saves, so reads use
    ordinary sessions there.
    """
    if engine.dialect.name == "sqlite":
        return make_sessionmaker(engine)
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(autocommit, expire_on_commit=False, autoflush=False)
