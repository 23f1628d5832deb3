"""What a service may tell the ledger about the request it serves, when the request alone
cannot say it (who signed in, for instance: a sign-in request arrives anonymous).

The entry itself is written by :mod:`control_plane.audit.recorder` whether or not a hint
was given; hints only make it more precise.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

HINT_KEY = "audit_hint"


@dataclass(frozen=True, slots=True)
class AuditHint:
    actor_kind: str | None = None
    actor_id: str | None = None
    org_id: str | None = None
    target_type: str | None = None
    target_id: str | None = None


def hint(
    db: AsyncSession,
    *,
    actor_kind: str | None = None,
    actor_id: str | None = None,
    org_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
) -> None:
    """Attach facts about the current request's actor, organization or target."""
    db.info[HINT_KEY] = AuditHint(actor_kind, actor_id, org_id, target_type, target_id)
