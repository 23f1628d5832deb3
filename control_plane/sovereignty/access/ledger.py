"""Access events in the tenant's own ledger chain (access transparency).

Request-level entries are written by the audit recorder for every mutating request; these
are the events that are not a request of their own: a use of a grant, a refusal by the
residency policy inside a request, a break-glass opening. They go to the chain of the
organization whose resource was touched, so its admins and auditors see them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit import store
from control_plane.audit.chain import AuditEntry
from control_plane.clock import Clock
from control_plane.identity.authz import ProviderScope
from control_plane.settings import Settings


async def record_operator_event(
    db: AsyncSession,
    *,
    operator: ProviderScope,
    org_id: str,
    action: str,
    target_type: str,
    target_id: str,
    outcome: str,
    decision_ref: str,
    payload: Mapping[str, Any],
    clock: Clock,
    settings: Settings,
) -> AuditEntry:
    """Append one operator event to ``org_id``'s chain in the caller's transaction."""
    principal = operator.principal
    return await store.record(
        db,
        org_id=org_id,
        region=settings.region,
        actor_kind="operator",
        actor_id=principal.user_id or principal.id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        request_id=structlog.contextvars.get_contextvars().get("request_id"),
        source_address=None,
        outcome=outcome,
        decision_ref=decision_ref[:200],
        payload=dict(payload),
        at=clock.now(),
    )
