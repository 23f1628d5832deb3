"""Notices to an organization's admins (break-glass access), shown until acknowledged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import NotFound
from control_plane.http.pagination import Page, PageRequest, make_page
from control_plane.identity.authz import TenantScope
from control_plane.identity.principal import Principal
from control_plane.identity.roles import Permission, tenant_allows
from control_plane.sovereignty.access import repository
from control_plane.sovereignty.access.models import AccessNotification
from control_plane.sovereignty.access.schemas import AccessNotificationRead


def notification_read(n: AccessNotification) -> AccessNotificationRead:
    return AccessNotificationRead(
        id=n.id,
        org_id=n.org_id,
        request_id=n.request_id,
        kind=n.kind,
        message=n.message,
        created_at=n.created_at,
        acknowledged_at=n.acknowledged_at,
        acknowledged_by=n.acknowledged_by,
    )


async def list_notifications(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    page: PageRequest,
    unacknowledged: bool = False,
) -> Page[AccessNotificationRead]:
    rows = await repository.org_notifications(db, scope, org_id, page, unacknowledged)
    result = make_page(rows, page, key=lambda n: n.id)
    return Page(items=[notification_read(n) for n in result.items], next_cursor=result.next_cursor)


async def acknowledge(
    db: AsyncSession, clock: Clock, scope: TenantScope, org_id: str, notification_id: str
) -> AccessNotificationRead:
    """Mark the notice seen (again: the same answer); the access itself stays reviewable."""
    scope.require(org_id, Permission.ACCESS_APPROVE)
    row = await repository.org_notification(db, scope, org_id, notification_id)
    if row is None:
        raise NotFound(detail="No such notification.")
    if row.acknowledged_at is None:
        row.acknowledged_at = clock.now()
        row.acknowledged_by = scope.principal.ref
    return notification_read(row)


async def acknowledge_for_request(
    db: AsyncSession, org_id: str, request_id: str, now: datetime, by: str
) -> None:
    """Reviewing a break-glass access shows it was seen: its notice is acknowledged too."""
    for row in await repository.open_notifications(db, org_id):
        if row.request_id == request_id:
            row.acknowledged_at = now
            row.acknowledged_by = by


async def banner_notifications(
    db: AsyncSession, principal: Principal | None
) -> list[AccessNotificationRead]:
    """Open notices for the portal's banner: only for those who can act on them (admins)
    of the organization the caller is looking at."""
    if principal is None:
        return []
    org_id = principal.default_org_id
    role = principal.memberships.get(org_id) if org_id else None
    if org_id is None or role is None or not tenant_allows(role, Permission.ACCESS_APPROVE):
        return []
    if principal.scopes is not None and Permission.ACCESS_APPROVE not in principal.scopes:
        return []
    return [notification_read(n) for n in await repository.open_notifications(db, org_id)]
