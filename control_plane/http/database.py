"""The request owns the transaction: commit on success, roll back on any error.

Requests that may change something are recorded in the audit ledger in the same
transaction (``control_plane.audit.recorder``), so no change commits without its entry.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.audit.recorder import is_audited, record_request, track_changes
from control_plane.errors import ProblemError

_SAFE_METHODS = frozenset({"GET", "HEAD"})


async def provide_db_session(request: Request[Any, Any, Any]) -> AsyncGenerator[AsyncSession, None]:
    """One session per request; commits after the handler unless it raised.

    Unaudited reads get an autocommit session (nothing to commit, no transaction to open).
    """
    state = request.app.state
    audited = is_audited(request.method, request.route_handler.opt)
    factory: async_sessionmaker[AsyncSession] = (
        state.sessionmaker
        if audited or request.method not in _SAFE_METHODS
        else state.read_sessionmaker
    )
    async with factory() as session:
        if audited:
            track_changes(session)
        try:
            yield session
        except ProblemError as problem:
            rule = problem.extra.get("rule")
            if isinstance(rule, str):
                request.scope.setdefault("state", {})["audit_decision_ref"] = rule
            if problem.commit_anyway:
                if audited:
                    await record_request(
                        session,
                        request.scope,
                        status=problem.status,
                        decision_ref=rule if isinstance(rule, str) else None,
                    )
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            if audited:
                await record_request(session, request.scope, status=_status(request))
            await session.commit()


def _status(request: Request[Any, Any, Any]) -> int:
    code = getattr(request.route_handler, "status_code", None)
    return code if isinstance(code, int) else 200
