"""Sign-in, sign-up, sessions and the current organization."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.hints import hint as audit_hint
from control_plane.clock import Clock
from control_plane.errors import Conflict, FieldError, Locked, NotFound, Unauthenticated
from control_plane.identity import repository
from control_plane.identity.login_limits import UnknownAccountFailures
from control_plane.identity.models import (
    Membership,
    OidcIdentityLink,
    Organization,
    Project,
    User,
    WebSession,
)
from control_plane.identity.principal import Principal
from control_plane.identity.roles import TenantRole
from control_plane.identity.schemas import MembershipSummary, SignupRequest
from control_plane.identity.secrets import (
    hash_password,
    new_session_token,
    token_digest,
    verify_password,
)
from control_plane.ids import new_id


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int
    lockout_seconds: int
    session_ttl_seconds: int


@dataclass(frozen=True)
class NewSession:
    token: str
    user: User
    csrf_token: str
    expires_at: datetime


_unknown_failures = UnknownAccountFailures()


def _locked(detail_seconds: int) -> Locked:
    return Locked(
        detail="Too many failed sign-in attempts. Try again later.",
        headers={"Retry-After": str(detail_seconds)},
    )


async def password_login(
    db: AsyncSession,
    clock: Clock,
    policy: LoginPolicy,
    email: str,
    password: str,
    source: str | None,
) -> NewSession:
    """Check a password; failures count towards a lockout (and are committed)."""
    email = email.strip().lower()
    now = clock.now()
    user = await repository.user_by_email(db, email)
    if user is None:
        # Same answers, Retry-After and unlock time as a real account (no enumeration).
        if until := _unknown_failures.locked_until(email, now):
            raise _locked(int((until - now).total_seconds()) + 1)
        await asyncio.to_thread(verify_password, None, password)
        _unknown_failures.record_failure(email, now, policy.max_failures, policy.lockout_seconds)
        raise Unauthenticated(detail="Wrong email or password.")
    if user.locked_until and user.locked_until > now:
        raise _locked(int((user.locked_until - now).total_seconds()) + 1)
    # argon2 takes tens of ms of CPU and lets go of the GIL: on a thread, the event loop
    # goes on serving every other request meanwhile (on the loop, a login stalled them all
    # for ~100 ms on a 2 vCPU replica, measured under bench.load).
    if not user.is_active or not await asyncio.to_thread(
        verify_password, user.password_hash, password
    ):
        user.failed_logins += 1
        if user.failed_logins >= policy.max_failures:
            user.locked_until = now + timedelta(seconds=policy.lockout_seconds)
            user.failed_logins = 0
        raise Unauthenticated(detail="Wrong email or password.", commit_anyway=True)
    user.failed_logins = 0
    user.locked_until = None
    return await start_session(db, clock, user, "password", policy.session_ttl_seconds, source)


async def start_session(
    db: AsyncSession, clock: Clock, user: User, method: str, ttl: int, source: str | None
) -> NewSession:
    now = clock.now()
    user.last_login_at = now
    token = new_session_token()
    memberships = await db.execute(
        select(Membership.org_id).where(Membership.user_id == user.id).order_by(Membership.org_id)
    )
    first_org = memberships.scalars().first()
    session = WebSession(
        id=token_digest(token),
        user_id=user.id,
        current_org_id=first_org,
        csrf_token=secrets.token_urlsafe(32),
        auth_method=method,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
        source_address=source,
    )
    db.add(session)
    audit_hint(
        db,
        actor_kind="user",
        actor_id=user.id,
        org_id=first_org,
        target_type="user",
        target_id=user.id,
    )
    await db.execute(delete(WebSession).where(WebSession.expires_at < now))
    return NewSession(token, user, session.csrf_token, session.expires_at)


async def end_session(db: AsyncSession, session_id: str, user_id: str | None = None) -> None:
    audit_hint(db, target_type="user", target_id=user_id)
    await db.execute(delete(WebSession).where(WebSession.id == session_id))


async def switch_org(db: AsyncSession, principal: Principal, org_id: str) -> None:
    """Make ``org_id`` the session's current organization (it must be one of the user's)."""
    if principal.session_id is None or org_id not in principal.memberships:
        raise NotFound(detail="No such organization.")
    session = await db.get(WebSession, principal.session_id)
    if session is None:
        raise Unauthenticated(detail="Your session has ended.")
    session.current_org_id = org_id
    audit_hint(db, org_id=org_id, target_type="organization", target_id=org_id)


async def who_am_i(
    db: AsyncSession, principal: Principal
) -> tuple[User | None, list[MembershipSummary]]:
    """The caller's user (None for API keys) and organizations with their role, by slug."""
    user = await db.get(User, principal.user_id) if principal.user_id else None
    orgs = await repository.orgs_by_id(db, frozenset(principal.memberships))
    summaries = [
        MembershipSummary(
            org_id=o.id, org_slug=o.slug, org_name=o.name, role=principal.memberships[o.id]
        )
        for o in orgs
    ]
    return user, sorted(summaries, key=lambda m: m.org_slug)


async def signup(db: AsyncSession, clock: Clock, data: SignupRequest) -> User:
    """Self-service sign-up: a user, their organization (as owner) and a default project."""
    email = data.email.strip().lower()
    if await repository.user_by_email(db, email) is not None:
        raise Conflict(
            detail="An account with this email exists; sign in instead.",
            errors=[FieldError("body.email", "already registered")],
        )
    if (
        await db.execute(select(Organization.id).where(Organization.slug == data.organization_slug))
    ).first():
        raise Conflict(
            detail="That organization slug is taken.",
            errors=[FieldError("body.organization_slug", "already taken")],
        )
    now = clock.now()
    user = User(
        id=new_id("usr"),
        email=email,
        name=data.name.strip(),
        password_hash=await asyncio.to_thread(hash_password, data.password),
        created_at=now,
        is_active=True,
        failed_logins=0,
    )
    org = Organization(
        id=new_id("org"), slug=data.organization_slug, name=data.organization_name, created_at=now
    )
    db.add_all([user, org])
    await db.flush()
    db.add(
        Membership(
            id=new_id("mem"), org_id=org.id, user_id=user.id, role=TenantRole.OWNER, created_at=now
        )
    )
    db.add(
        Project(
            id=new_id("prj"),
            org_id=org.id,
            slug="default",
            name="Default",
            description="",
            created_at=now,
        )
    )
    return user


async def user_for_sso(
    db: AsyncSession, clock: Clock, issuer: str, subject: str, email: str | None, verified: bool
) -> User:
    """The local user an SSO identity signs in as: linked before, or matched by verified email."""
    link = (
        await db.execute(
            select(OidcIdentityLink).where(
                OidcIdentityLink.issuer == issuer, OidcIdentityLink.subject == subject
            )
        )
    ).scalar_one_or_none()
    if link is not None:
        # A linked identity signs in as its user or not at all: never re-link it by email.
        user = await db.get(User, link.user_id)
        if user is not None and user.is_active:
            return user
        raise Unauthenticated(detail="This sign-on identity's account is disabled.")
    if email and verified:
        user = await repository.user_by_email(db, email)
        if user is not None and user.is_active:
            db.add(
                OidcIdentityLink(
                    id=new_id("oid"),
                    issuer=issuer,
                    subject=subject,
                    user_id=user.id,
                    created_at=clock.now(),
                )
            )
            return user
    raise Unauthenticated(
        detail="No account is linked to this sign-on identity. Ask an administrator to invite you."
    )
