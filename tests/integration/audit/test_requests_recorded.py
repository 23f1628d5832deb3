"""Every operation of the API that changes something leaves a ledger entry, by itself.

The operations and valid calls come from the route-isolation table (``EXPECTATIONS``), so
an operation added to the API without an entry there fails that suite, and one whose calls
are not recorded fails this one. Nothing here tells a handler to record anything.
"""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.chain import verify_chain
from control_plane.audit.models import AuditEntryRow
from control_plane.audit.store import entries
from control_plane.clock import Clock
from control_plane.identity.roles import TenantRole, tenant_allows
from control_plane.settings import Settings
from tests.integration.security.conftest import build_catalog, build_world, unique
from tests.integration.security.test_route_isolation import (
    CALLER_ORDER,
    EXPECTATIONS,
    UNSAFE,
    Outcome,
    _send,
    expected_outcome,
)

MUTATING = sorted(
    op
    for op, (rule, _) in EXPECTATIONS.items()
    if op.split(" ", 1)[0] in UNSAFE and rule.answer is Outcome.OK
)


# Tenant operations some role of the organization may not call.
REFUSABLE = [
    op
    for op in MUTATING
    if EXPECTATIONS[op][0].access == "tenant"
    and any(not tenant_allows(role, EXPECTATIONS[op][0].permission) for role in TenantRole)  # type: ignore[arg-type]
]


async def _entry_for(db: AsyncSession, request_id: str) -> AuditEntryRow | None:
    """The request's own entry: the last one with its request id.

    Services may record decisions (residency, key use, operator access) during the request,
    with the same request id; the request's own entry is appended just before the commit.
    """
    db.expire_all()
    found = await db.execute(
        select(AuditEntryRow)
        .where(AuditEntryRow.request_id == request_id)
        .order_by(AuditEntryRow.at.desc(), AuditEntryRow.seq.desc())
        .limit(1)
    )
    return found.scalars().first()


class TestEveryChangeIsRecorded:
    def test_the_table_covers_mutating_operations(self) -> None:
        assert len(MUTATING) >= 20

    @pytest.mark.parametrize("operation", MUTATING, ids=MUTATING)
    async def test_a_successful_call_commits_with_its_entry(
        self,
        operation: str,
        client: AsyncTestClient[Litestar],
        db: AsyncSession,
        clock: Clock,
        app: Litestar,
        settings: Settings,
    ) -> None:
        rule, build = EXPECTATIONS[operation]
        method = operation.split(" ", 1)[0]
        await build_catalog(db, clock)
        world = await build_world(db, clock, settings.model_store_root, settings)
        await db.commit()
        caller = next(
            world.callers[name]
            for name in CALLER_ORDER
            if expected_outcome(rule, world.callers[name]) is Outcome.OK
        )
        call = build(world, unique())
        response = await _send(client, method, call, caller)
        assert response.is_success, response.text
        entry = await _entry_for(db, response.headers["x-request-id"])
        assert entry is not None, f"{operation} left no ledger entry"
        assert entry.outcome == "success"
        assert entry.actor_kind in {"user", "api_key", "operator", "anonymous"}
        assert entry.chain == f"{entry.org_id or '_provider'}/{app.state.settings.region}"
        if rule.access == "tenant":
            assert entry.org_id == world.victim.org_id
        if "{" in operation or method == "POST":
            assert entry.target_type, operation
            assert entry.target_id, operation
        chain = await entries(db, entry.chain)
        assert verify_chain(chain, chain=entry.chain) is None

    @pytest.mark.parametrize("operation", REFUSABLE, ids=REFUSABLE)
    async def test_a_refused_member_is_recorded_in_the_org_chain_and_nothing_else_is(
        self,
        operation: str,
        client: AsyncTestClient[Litestar],
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> None:
        rule, build = EXPECTATIONS[operation]
        method = operation.split(" ", 1)[0]
        await build_catalog(db, clock)
        world = await build_world(db, clock, settings.model_store_root, settings)
        await db.commit()
        refused = [
            world.callers[name]
            for name in CALLER_ORDER
            if world.callers[name].victim_role is not None
            and expected_outcome(rule, world.callers[name]) is Outcome.FORBIDDEN
        ]
        response = await _send(client, method, build(world, unique()), refused[0])
        assert response.status_code == 403, response.text
        entry = await _entry_for(db, response.headers["x-request-id"])
        assert entry is not None
        assert (entry.outcome, entry.org_id) == ("denied", world.victim.org_id)
        assert entry.actor_kind == "user"
