"""A tenancy's timeline: every transition is validated, timestamped, written as an event
the tenant sees, and appended to the ledger in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.store import record
from control_plane.ids import new_id
from control_plane.tenancies.lifecycle import TenancyState, require_transition
from control_plane.tenancies.models import Tenancy, TenancyEvent


@dataclass(frozen=True, slots=True)
class Actor:
    """Who moved the tenancy, as the ledger (kind, id) and the timeline (label) name them."""

    kind: str  # user, api_key, operator, system
    id: str | None
    label: str

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls("system", name, name)


async def transition(
    db: AsyncSession,
    tenancy: Tenancy,
    to: TenancyState,
    *,
    detail: str,
    actor: Actor,
    at: datetime,
    ledger_region: str,
) -> None:
    require_transition(tenancy.state, to)
    before = tenancy.state
    tenancy.state = to
    tenancy.state_changed_at = at
    tenancy.stuck_since = None
    db.add(
        TenancyEvent(
            id=new_id("tev"), tenancy_id=tenancy.id, at=at, kind="transition",
            from_state=before, to_state=to, detail=detail[:1000], actor=actor.label[:80],
        )
    )  # fmt: skip
    await record(
        db,
        org_id=tenancy.org_id,
        region=ledger_region,
        actor_kind=actor.kind,
        actor_id=actor.id,
        action="tenancy.transition",
        target_type="tenancy",
        target_id=tenancy.id,
        request_id=_request_id(),
        source_address=None,
        outcome="success",
        decision_ref=None,
        payload={"from": before, "to": to.value, "detail": detail, "region": tenancy.region_code},
        at=at,
    )


def note(
    db: AsyncSession, tenancy: Tenancy, kind: str, detail: str, actor: Actor, at: datetime
) -> None:
    """A step, warning or error on the timeline (not a state change)."""
    db.add(
        TenancyEvent(
            id=new_id("tev"), tenancy_id=tenancy.id, at=at, kind=kind, from_state=None,
            to_state=None, detail=detail[:1000], actor=actor.label[:80],
        )
    )  # fmt: skip


def _request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None
