"""Deleting an organization: its people lose access at once, and other domains destroy what
they hold for it (the keys domain shreds its data keys) in the same transaction.

Identity does not know those domains: they register an :class:`OrgDeletionHook` with the
app factory, which hands the hooks to :func:`delete_org`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import FieldError, Forbidden, InvalidInput
from control_plane.identity import repository
from control_plane.identity.authz import TenantScope
from control_plane.identity.models import ApiKey, Membership, WebSession
from control_plane.identity.roles import Permission


class OrgDeletionHook(Protocol):
    """Called inside the deleting transaction; raising aborts the whole deletion."""

    async def __call__(self, db: AsyncSession, org_id: str, at: datetime) -> None: ...


async def delete_org(
    db: AsyncSession,
    clock: Clock,
    scope: TenantScope,
    org_id: str,
    confirm: str,
    hooks: Sequence[OrgDeletionHook],
) -> list[str]:
    """Mark the organization deleted, end its memberships and keys, run the hooks.

    ``confirm`` must repeat the organization's slug or id. Returns the ids of the users
    who were members (their cached sessions must be forgotten). The organization's row
    stays (deleted_at set) so the ledger's references to it still resolve.
    """
    scope.require(org_id, Permission.ORG_DELETE)
    if scope.principal.user_id is None:
        raise Forbidden(detail="API keys cannot delete organizations; sign in as an owner.")
    org = await repository.org_in_scope(db, scope, org_id)
    if confirm.strip() not in (org.slug, org.id):
        raise InvalidInput(
            detail="Confirm the deletion with the organization's slug.",
            errors=[FieldError("query.confirm", f"must be {org.slug!r}")],
        )
    now = clock.now()
    org.deleted_at = now
    members = await db.execute(select(Membership.user_id).where(Membership.org_id == org_id))
    user_ids = sorted(members.scalars().all())
    await db.execute(delete(Membership).where(Membership.org_id == org_id))
    await db.execute(
        update(ApiKey)
        .where(ApiKey.org_id == org_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await db.execute(
        update(WebSession).where(WebSession.current_org_id == org_id).values(current_org_id=None)
    )
    for hook in hooks:
        await hook(db, org_id, now)
    await db.flush()
    return user_ids
