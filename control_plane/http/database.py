"""The request owns the transaction: commit on success, roll back on any error."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.errors import ProblemError

_SAFE_METHODS = frozenset({"GET", "HEAD"})


async def provide_db_session(request: Request[Any, Any, Any]) -> AsyncGenerator[AsyncSession, None]:
    """One session per request; commits after the handler unless it raised.

    Safe methods get an autocommit session (nothing to commit, no transaction to open).
    """
    state = request.app.state
    factory: async_sessionmaker[AsyncSession] = (
        state.read_sessionmaker if request.method in _SAFE_METHODS else state.sessionmaker
    )
    async with factory() as session:
        try:
            yield session
        except ProblemError as problem:
            await (session.commit() if problem.commit_anyway else session.rollback())
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()
