"""Queries on access requests, uses and notifications.

Tenant-facing queries take a TenantScope and filter with it. Operator-facing ones filter
on the operator's own user id (operator-admins see every request). States that run out
with time are matched as of ``now`` (see ``lifecycle.effective_state``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.http.pagination import PageRequest
from control_plane.identity.authz import TenantScope
from control_plane.sovereignty.access.lifecycle import AccessState
from control_plane.sovereignty.access.models import AccessNotification, AccessRequest, AccessUse


def state_filter(state: AccessState, now: datetime) -> ColumnElement[bool]:
    """Rows whose state as of ``now`` is ``state`` (pending and approved ones run out)."""
    stored = AccessRequest.state
    if state is AccessState.PENDING:
        return and_(stored == state, AccessRequest.decide_by > now)
    if state is AccessState.APPROVED:
        return and_(stored == state, AccessRequest.expires_at > now)
    if state is AccessState.EXPIRED:
        return or_(
            stored == state,
            and_(stored == AccessState.PENDING, AccessRequest.decide_by <= now),
            and_(stored == AccessState.APPROVED, AccessRequest.expires_at <= now),
        )
    return stored == state


async def by_id(db: AsyncSession, request_id: str) -> AccessRequest | None:
    return await db.get(AccessRequest, request_id)


async def operator_requests(
    db: AsyncSession,
    operator_id: str | None,
    page: PageRequest,
    state: AccessState | None,
    now: datetime,
) -> Sequence[AccessRequest]:
    """Newest first; ``operator_id=None`` lists every operator's (operator-admins)."""
    query = select(AccessRequest)
    if operator_id is not None:
        query = query.where(AccessRequest.operator_id == operator_id)
    return await _page(db, query, page, state, now)


async def org_request(
    db: AsyncSession, scope: TenantScope, org_id: str, request_id: str
) -> AccessRequest | None:
    scope.require(org_id)
    query = select(AccessRequest).where(
        scope.visible_filter(AccessRequest.org_id),
        AccessRequest.org_id == org_id,
        AccessRequest.id == request_id,
    )
    return (await db.execute(query)).scalar_one_or_none()


async def org_requests(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    page: PageRequest,
    state: AccessState | None,
    now: datetime,
    needs_review: bool = False,
) -> Sequence[AccessRequest]:
    scope.require(org_id)
    query = select(AccessRequest).where(
        scope.org_filter(AccessRequest.org_id), AccessRequest.org_id == org_id
    )
    if needs_review:
        query = query.where(
            AccessRequest.review_required.is_(True), AccessRequest.review_verdict.is_(None)
        )
    return await _page(db, query, page, state, now)


async def _page(
    db: AsyncSession,
    query: Select[AccessRequest],
    page: PageRequest,
    state: AccessState | None,
    now: datetime,
) -> Sequence[AccessRequest]:
    if state is not None:
        query = query.where(state_filter(state, now))
    if page.after:
        query = query.where(AccessRequest.id < page.after)
    query = query.order_by(AccessRequest.id.desc()).limit(page.limit + 1)
    return (await db.execute(query)).scalars().all()


async def active_grant(
    db: AsyncSession,
    *,
    org_id: str,
    operator_id: str,
    resource_type: str,
    resource_id: str,
    now: datetime,
) -> AccessRequest | None:
    """The operator's open grant on the resource that runs longest, if any."""
    query = (
        select(AccessRequest)
        .where(
            AccessRequest.org_id == org_id,
            AccessRequest.operator_id == operator_id,
            AccessRequest.resource_type == resource_type,
            AccessRequest.resource_id == resource_id,
            AccessRequest.approved_at <= now,
            state_filter(AccessState.APPROVED, now),
        )
        .order_by(AccessRequest.expires_at.desc())
        .limit(1)
    )
    return (await db.execute(query)).scalar_one_or_none()


async def uses_of(db: AsyncSession, request_ids: Sequence[str]) -> Sequence[AccessUse]:
    if not request_ids:
        return []
    query = (
        select(AccessUse)
        .where(AccessUse.request_id.in_(sorted(set(request_ids))))
        .order_by(AccessUse.at, AccessUse.id)
    )
    return (await db.execute(query)).scalars().all()


async def open_notifications(db: AsyncSession, org_id: str) -> Sequence[AccessNotification]:
    """Unacknowledged notices of one organization (the caller checked the reader's role)."""
    query = (
        select(AccessNotification)
        .where(AccessNotification.org_id == org_id, AccessNotification.acknowledged_at.is_(None))
        .order_by(AccessNotification.id)
    )
    return (await db.execute(query)).scalars().all()


async def org_notifications(
    db: AsyncSession, scope: TenantScope, org_id: str, page: PageRequest, unacknowledged: bool
) -> Sequence[AccessNotification]:
    scope.require(org_id)
    query = select(AccessNotification).where(
        scope.org_filter(AccessNotification.org_id), AccessNotification.org_id == org_id
    )
    if unacknowledged:
        query = query.where(AccessNotification.acknowledged_at.is_(None))
    if page.after:
        query = query.where(AccessNotification.id < page.after)
    query = query.order_by(AccessNotification.id.desc()).limit(page.limit + 1)
    return (await db.execute(query)).scalars().all()


async def org_notification(
    db: AsyncSession, scope: TenantScope, org_id: str, notification_id: str
) -> AccessNotification | None:
    scope.require(org_id)
    query = select(AccessNotification).where(
        scope.visible_filter(AccessNotification.org_id),
        AccessNotification.org_id == org_id,
        AccessNotification.id == notification_id,
    )
    return (await db.execute(query)).scalar_one_or_none()
