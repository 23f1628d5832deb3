"""Operator access approval: operators ask (or break the glass), tenants decide and review.

Every change of state goes through ``lifecycle.next_state``. Operators are identified by
their user id; a tenant acts through a TenantScope. Nobody approves or reviews their own
request, whichever roles they hold (an API key acts for the person who made it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
)
from control_plane.http.pagination import Page, PageRequest, make_page
from control_plane.identity import api_keys, organizations
from control_plane.identity.authz import ProviderScope, TenantScope
from control_plane.identity.roles import Permission
from control_plane.ids import new_id
from control_plane.settings import Settings
from control_plane.sovereignty.access import notifications, repository
from control_plane.sovereignty.access.ledger import record_operator_event
from control_plane.sovereignty.access.lifecycle import (
    DECISION_WINDOW,
    AccessEvent,
    AccessState,
    ReasonCode,
    RequestKind,
    ResourceType,
    ReviewVerdict,
    Timing,
    TransitionRefused,
    effective_state,
    next_state,
)
from control_plane.sovereignty.access.models import AccessNotification, AccessRequest, AccessUse
from control_plane.sovereignty.access.policy import require_allowed_operator
from control_plane.sovereignty.access.schemas import (
    AccessRequestCreate,
    AccessRequestDetail,
    AccessRequestRead,
    AccessReview,
    AccessUseRead,
    BreakGlassCreate,
)


def state_of(row: AccessRequest, now: datetime) -> AccessState:
    return effective_state(AccessState(row.state), Timing(row.decide_by, row.expires_at), now)


def request_read(row: AccessRequest, now: datetime) -> AccessRequestRead:
    state = state_of(row, now)
    return AccessRequestRead(
        id=row.id,
        org_id=row.org_id,
        kind=RequestKind(row.kind),
        operator_id=row.operator_id,
        operator_email=row.operator_email,
        operator_jurisdiction=row.operator_jurisdiction,
        resource_type=ResourceType(row.resource_type),
        resource_id=row.resource_id,
        reason_code=ReasonCode(row.reason_code),
        justification=row.justification,
        duration_minutes=row.duration_minutes,
        state=state,
        active=state is AccessState.APPROVED,
        requested_at=row.requested_at,
        decide_by=row.decide_by,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        decision_note=row.decision_note,
        approved_at=row.approved_at,
        expires_at=row.expires_at,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
        policy_rule=row.policy_rule,
        review_required=row.review_required,
        review_verdict=ReviewVerdict(row.review_verdict) if row.review_verdict else None,
        review_comment=row.review_comment,
        reviewed_at=row.reviewed_at,
        reviewed_by=row.reviewed_by,
    )


def use_read(use: AccessUse) -> AccessUseRead:
    return AccessUseRead(
        id=use.id,
        request_id=use.request_id,
        operator_id=use.operator_id,
        resource_type=ResourceType(use.resource_type),
        resource_id=use.resource_id,
        purpose=use.purpose,
        at=use.at,
        ledger_chain=use.ledger_chain,
        ledger_seq=use.ledger_seq,
    )


async def details(
    db: AsyncSession, rows: Sequence[AccessRequest], now: datetime
) -> list[AccessRequestDetail]:
    """Each request with its uses, oldest use first."""
    uses = await repository.uses_of(db, [r.id for r in rows])
    return [
        AccessRequestDetail(
            request=request_read(r, now),
            uses=[use_read(u) for u in uses if u.request_id == r.id],
        )
        for r in rows
    ]


def _move(row: AccessRequest, current: AccessState, event: AccessEvent) -> AccessState:
    try:
        target = next_state(current, event)
    except TransitionRefused as refused:
        raise InvalidTransition(
            detail=f"Cannot {event} access request {row.id}: it is {current}.",
            extra={"state": str(current)},
        ) from refused
    row.state = target
    return target


# Operators -----------------------------------------------------------------------------------


async def create_request(
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    operator: ProviderScope,
    data: AccessRequestCreate,
) -> AccessRequestRead:
    """Ask the tenant; the residency policy must allow the operator's home first."""
    row = await _new_request(db, clock, settings, operator, data, RequestKind.STANDARD)
    return request_read(row, clock.now())


async def open_break_glass(
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    operator: ProviderScope,
    data: BreakGlassCreate,
) -> AccessRequestRead:
    """Emergency access, active at once; the tenant is told now and reviews it afterwards."""
    row = await _new_request(db, clock, settings, operator, data, RequestKind.BREAK_GLASS)
    assert row.expires_at is not None
    message = (
        f"Break-glass access by {row.operator_email} "
        f"(home {row.operator_jurisdiction or 'undeclared'}) to {row.resource_type} "
        f"{row.resource_id} until {row.expires_at:%Y-%m-%d %H:%M} UTC, "
        f"reason {row.reason_code}: {row.justification}"
    )
    db.add(
        AccessNotification(
            id=new_id("acn"),
            org_id=row.org_id,
            request_id=row.id,
            kind=RequestKind.BREAK_GLASS,
            message=message[:500],
            created_at=row.requested_at,
        )
    )
    await record_operator_event(
        db,
        operator=operator,
        org_id=row.org_id,
        action="access.break_glass",
        target_type=row.resource_type,
        target_id=row.resource_id,
        outcome="allowed",
        decision_ref=row.justification,
        payload={
            "request_id": row.id,
            "reason_code": row.reason_code,
            "expires_at": row.expires_at.isoformat(),
        },
        clock=clock,
        settings=settings,
    )
    return request_read(row, clock.now())


async def _new_request(
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    operator: ProviderScope,
    data: AccessRequestCreate | BreakGlassCreate,
    kind: RequestKind,
) -> AccessRequest:
    principal = operator.principal
    if principal.user_id is None:
        raise Forbidden(detail="Only signed-in provider staff request access.")
    org = await organizations.find_org(db, data.org_id)
    if org is None:
        raise NotFound(
            detail="No such organization.",
            errors=[FieldError("body.org_id", "no such organization")],
        )
    resource_id = _resource_id(data, org.id)
    decision = await require_allowed_operator(
        db,
        operator=operator,
        org_id=org.id,
        target_type=data.resource_type,
        target_id=resource_id,
        clock=clock,
        settings=settings,
    )
    now = clock.now()
    if kind is RequestKind.STANDARD:
        await _refuse_duplicate(db, principal.user_id, org.id, data, resource_id, now)
    glass = kind is RequestKind.BREAK_GLASS
    row = AccessRequest(
        id=new_id("acr"),
        org_id=org.id,
        kind=kind,
        operator_id=principal.user_id,
        operator_email=principal.display[:254],
        operator_jurisdiction=principal.home_country,
        resource_type=data.resource_type,
        resource_id=resource_id,
        reason_code=data.reason_code,
        justification=data.justification,
        duration_minutes=data.duration_minutes,
        policy_rule=decision.rule,
        state=AccessState.APPROVED if glass else AccessState.PENDING,
        requested_at=now,
        decide_by=now if glass else now + DECISION_WINDOW,
        decided_at=now if glass else None,
        decided_by="break-glass" if glass else None,
        approved_at=now if glass else None,
        expires_at=now + timedelta(minutes=data.duration_minutes) if glass else None,
        review_required=glass,
    )
    db.add(row)
    await db.flush()
    return row


def _resource_id(data: AccessRequestCreate | BreakGlassCreate, org_id: str) -> str:
    """Support data is the organization's own; other resources must be named."""
    if data.resource_type is ResourceType.SUPPORT_DATA:
        if data.resource_id not in (None, org_id):
            raise InvalidInput(
                detail="Support data is requested for the organization as a whole.",
                errors=[FieldError("body.resource_id", "leave out, or give the organization id")],
            )
        return org_id
    if data.resource_id is None:
        raise InvalidInput(
            detail=f"Name the {data.resource_type} to access.",
            errors=[FieldError("body.resource_id", "required for this resource type")],
        )
    return data.resource_id


async def _refuse_duplicate(
    db: AsyncSession,
    operator_id: str,
    org_id: str,
    data: AccessRequestCreate | BreakGlassCreate,
    resource_id: str,
    now: datetime,
) -> None:
    """One open request per operator and resource: a tenant should not be asked twice."""
    page = PageRequest(limit=200, after=None)
    for state in (AccessState.PENDING, AccessState.APPROVED):
        for row in await repository.operator_requests(db, operator_id, page, state, now):
            if (row.org_id, row.resource_type, row.resource_id) == (
                org_id,
                data.resource_type,
                resource_id,
            ):
                raise Conflict(
                    detail=f"You already have a {state} request ({row.id}) for this resource.",
                    extra={"request_id": row.id},
                )


async def list_own_requests(
    db: AsyncSession,
    clock: Clock,
    operator: ProviderScope,
    page: PageRequest,
    state: AccessState | None = None,
) -> Page[AccessRequestRead]:
    """The caller's own requests, newest first."""
    now = clock.now()
    rows = await repository.operator_requests(db, operator.principal.user_id, page, state, now)
    result = make_page(rows, page, key=lambda r: r.id)
    return Page(items=[request_read(r, now) for r in result.items], next_cursor=result.next_cursor)


async def get_own_request(
    db: AsyncSession, clock: Clock, operator: ProviderScope, request_id: str
) -> AccessRequestDetail:
    row = await _operator_row(db, operator, request_id)
    return (await details(db, [row], clock.now()))[0]


async def withdraw(
    db: AsyncSession, clock: Clock, operator: ProviderScope, request_id: str
) -> AccessRequestRead:
    """Take back a request nobody decided yet (again: the same answer)."""
    row = await _operator_row(db, operator, request_id)
    now = clock.now()
    current = state_of(row, now)
    if current is not AccessState.WITHDRAWN:
        _move(row, current, AccessEvent.WITHDRAW)
        row.ended_at = now
        row.ended_by = operator.principal.ref
    return request_read(row, now)


async def _operator_row(
    db: AsyncSession, operator: ProviderScope, request_id: str
) -> AccessRequest:
    """A request the operator made; operator-admins oversee every operator's."""
    row = await repository.by_id(db, request_id)
    if row is None or not (operator.unrestricted or row.operator_id == operator.principal.user_id):
        raise NotFound(detail="No such access request among yours.")
    return row


# Tenants -------------------------------------------------------------------------------------


async def list_org_requests(
    db: AsyncSession,
    clock: Clock,
    scope: TenantScope,
    org_id: str,
    page: PageRequest,
    state: AccessState | None = None,
    needs_review: bool = False,
) -> Page[AccessRequestRead]:
    """Newest first; ``needs_review``: only break-glass access nobody reviewed yet."""
    now = clock.now()
    rows = await repository.org_requests(db, scope, org_id, page, state, now, needs_review)
    result = make_page(rows, page, key=lambda r: r.id)
    return Page(items=[request_read(r, now) for r in result.items], next_cursor=result.next_cursor)


async def get_org_request(
    db: AsyncSession, clock: Clock, scope: TenantScope, org_id: str, request_id: str
) -> AccessRequestDetail:
    row = await _org_row(db, scope, org_id, request_id)
    return (await details(db, [row], clock.now()))[0]


async def approve(
    db: AsyncSession, clock: Clock, scope: TenantScope, org_id: str, request_id: str
) -> AccessRequestRead:
    """Open the grant window now, for the duration the operator asked."""
    row = await _org_row(db, scope, org_id, request_id, Permission.ACCESS_APPROVE)
    await _refuse_own(db, scope, row, "approve")
    now = clock.now()
    current = state_of(row, now)
    if row.kind == RequestKind.BREAK_GLASS:
        raise Conflict(detail="Break-glass access needs no approval; review it instead.")
    if current is AccessState.APPROVED:
        return request_read(row, now)
    _move(row, current, AccessEvent.APPROVE)
    row.decided_at = row.approved_at = now
    row.decided_by = scope.principal.ref
    row.expires_at = now + timedelta(minutes=row.duration_minutes)
    return request_read(row, now)


async def deny(
    db: AsyncSession, clock: Clock, scope: TenantScope, org_id: str, request_id: str, reason: str
) -> AccessRequestRead:
    row = await _org_row(db, scope, org_id, request_id, Permission.ACCESS_APPROVE)
    now = clock.now()
    current = state_of(row, now)
    if current is not AccessState.DENIED:
        _move(row, current, AccessEvent.DENY)
        row.decided_at = now
        row.decided_by = scope.principal.ref
        row.decision_note = reason
    return request_read(row, now)


async def revoke(
    db: AsyncSession, clock: Clock, scope: TenantScope, org_id: str, request_id: str
) -> AccessRequestRead:
    """End an open grant (approved or break-glass) before its window runs out."""
    row = await _org_row(db, scope, org_id, request_id, Permission.ACCESS_APPROVE)
    now = clock.now()
    current = state_of(row, now)
    if current is not AccessState.REVOKED:
        _move(row, current, AccessEvent.REVOKE)
        row.ended_at = now
        row.ended_by = scope.principal.ref
    return request_read(row, now)


async def review(
    db: AsyncSession,
    clock: Clock,
    scope: TenantScope,
    org_id: str,
    request_id: str,
    data: AccessReview,
) -> AccessRequestRead:
    """The tenant's verdict on a break-glass access; it also acknowledges its notice."""
    row = await _org_row(db, scope, org_id, request_id, Permission.ACCESS_APPROVE)
    now = clock.now()
    if row.kind != RequestKind.BREAK_GLASS:
        raise Conflict(detail="Only break-glass access is reviewed afterwards.")
    await _refuse_own(db, scope, row, "review")
    if row.review_verdict is not None:
        if (row.review_verdict, row.review_comment or "") == (data.verdict, data.comment):
            return request_read(row, now)
        raise Conflict(detail=f"Access request {row.id} was already reviewed.")
    row.review_verdict = data.verdict
    row.review_comment = data.comment or None
    row.reviewed_at = now
    row.reviewed_by = scope.principal.ref
    await notifications.acknowledge_for_request(db, row.org_id, row.id, now, scope.principal.ref)
    return request_read(row, now)


async def _org_row(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    request_id: str,
    permission: Permission | None = None,
) -> AccessRequest:
    scope.require(org_id, permission)
    row = await repository.org_request(db, scope, org_id, request_id)
    if row is None:
        raise NotFound(detail="No such access request.")
    return row


async def _refuse_own(db: AsyncSession, scope: TenantScope, row: AccessRequest, verb: str) -> None:
    """The person behind the caller (a key's maker, for API keys) is not the requester."""
    principal = scope.principal
    person = principal.user_id
    if principal.kind == "api_key":
        person = (await api_keys.get_api_key(db, scope, principal.id)).created_by
    if person is not None and person == row.operator_id:
        raise Forbidden(detail=f"You cannot {verb} your own access request.")
