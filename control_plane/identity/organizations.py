"""Organizations and their members."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import Conflict, FieldError, Forbidden, NotFound
from control_plane.http.pagination import Page, PageRequest, make_page
from control_plane.identity import repository
from control_plane.identity.authz import TenantScope
from control_plane.identity.models import Membership, Organization, Project, User
from control_plane.identity.principal import Principal
from control_plane.identity.projects import project_read
from control_plane.identity.roles import ROLE_RANK, Permission, TenantRole
from control_plane.identity.schemas import (
    MemberCreate,
    MemberRead,
    MemberUpdate,
    OrgCreate,
    OrgRead,
    OrgUpdate,
    ProjectRead,
)
from control_plane.ids import new_id


def org_read(org: Organization, role: TenantRole | None) -> OrgRead:
    return OrgRead(id=org.id, slug=org.slug, name=org.name, created_at=org.created_at, role=role)


def member_read(m: Membership, u: User) -> MemberRead:
    return MemberRead(
        user_id=u.id, email=u.email, name=u.name, role=TenantRole(m.role), created_at=m.created_at
    )


async def list_orgs(db: AsyncSession, principal: Principal, page: PageRequest) -> Page[OrgRead]:
    rows = await repository.orgs_of_user(db, frozenset(principal.memberships), page)
    result = make_page(rows, page, key=lambda o: o.id)
    return Page(
        items=[org_read(o, principal.memberships.get(o.id)) for o in result.items],
        next_cursor=result.next_cursor,
    )


async def create_org(
    db: AsyncSession, clock: Clock, principal: Principal, data: OrgCreate
) -> OrgRead:
    """Any signed-in user may found an organization and becomes its owner."""
    if principal.user_id is None:
        raise Forbidden(detail="API keys cannot create organizations.")
    if (await db.execute(select(Organization.id).where(Organization.slug == data.slug))).first():
        raise Conflict(
            detail="That organization slug is taken.",
            errors=[FieldError("body.slug", "already taken")],
        )
    now = clock.now()
    org = Organization(id=new_id("org"), slug=data.slug, name=data.name, created_at=now)
    db.add(org)
    await db.flush()
    db.add(
        Membership(
            id=new_id("mem"),
            org_id=org.id,
            user_id=principal.user_id,
            role=TenantRole.OWNER,
            created_at=now,
        )
    )
    return org_read(org, TenantRole.OWNER)


async def get_org(db: AsyncSession, scope: TenantScope, org_id: str) -> OrgRead:
    org = await repository.org_in_scope(db, scope, org_id)
    return org_read(org, scope.role_in(org_id))


async def update_org(db: AsyncSession, scope: TenantScope, org_id: str, data: OrgUpdate) -> OrgRead:
    org = await repository.org_in_scope(db, scope, org_id)
    if isinstance(data.name, str):
        org.name = data.name
    return org_read(org, scope.role_in(org_id))


async def list_members(
    db: AsyncSession, scope: TenantScope, org_id: str, page: PageRequest
) -> Page[MemberRead]:
    rows = await repository.members(db, scope, org_id, page)
    result = make_page(rows, page, key=lambda row: row[1].id)
    return Page(items=[member_read(m, u) for m, u in result.items], next_cursor=result.next_cursor)


def _check_grant(scope: TenantScope, org_id: str, role: TenantRole) -> None:
    mine = scope.role_in(org_id)
    if mine is None or ROLE_RANK[role] > ROLE_RANK[mine]:
        raise Forbidden(
            detail=f"A {mine} cannot grant the {role} role.",
            errors=[FieldError("body.role", "above your own role")],
        )


async def add_member(
    db: AsyncSession, clock: Clock, scope: TenantScope, org_id: str, data: MemberCreate
) -> MemberRead:
    """Add a user by email; an unknown email becomes an invited user (no password, SSO)."""
    scope.require(org_id, Permission.MEMBERS_WRITE)
    _check_grant(scope, org_id, data.role)
    now = clock.now()
    user = await repository.user_by_email(db, data.email)
    if user is None:
        user = User(
            id=new_id("usr"),
            email=data.email.strip().lower(),
            name=data.name if isinstance(data.name, str) else data.email.split("@")[0],
            password_hash=None,
            is_active=True,
            failed_logins=0,
            created_at=now,
        )
        db.add(user)
        await db.flush()
    elif await repository.membership(db, scope, org_id, user.id) is not None:
        raise Conflict(
            detail="That user is already a member.",
            errors=[FieldError("body.email", "already a member")],
        )
    membership = Membership(
        id=new_id("mem"), org_id=org_id, user_id=user.id, role=data.role, created_at=now
    )
    db.add(membership)
    return member_read(membership, user)


async def update_member(
    db: AsyncSession, scope: TenantScope, org_id: str, user_id: str, data: MemberUpdate
) -> MemberRead:
    membership = await _editable_membership(db, scope, org_id, user_id)
    _check_grant(scope, org_id, data.role)
    if membership.role == TenantRole.OWNER and data.role != TenantRole.OWNER:
        await _keep_an_owner(db, org_id)
    membership.role = data.role
    user = await db.get(User, user_id)
    assert user is not None
    return member_read(membership, user)


async def remove_member(db: AsyncSession, scope: TenantScope, org_id: str, user_id: str) -> None:
    membership = await _editable_membership(db, scope, org_id, user_id)
    if membership.role == TenantRole.OWNER:
        await _keep_an_owner(db, org_id)
    await db.delete(membership)


async def _editable_membership(
    db: AsyncSession, scope: TenantScope, org_id: str, user_id: str
) -> Membership:
    scope.require(org_id, Permission.MEMBERS_WRITE)
    membership = await repository.membership(db, scope, org_id, user_id)
    if membership is None:
        raise NotFound(detail="No such member.")
    _check_grant(scope, org_id, TenantRole(membership.role))
    return membership


async def _keep_an_owner(db: AsyncSession, org_id: str) -> None:
    if await repository.owner_count(db, org_id) <= 1:
        raise Conflict(detail="An organization needs at least one owner.")


@dataclass(frozen=True)
class OrgCounts:
    """What an organization holds; None where the caller's role may not see that number."""

    projects: int | None
    members: int | None
    active_api_keys: int | None


async def org_counts(db: AsyncSession, clock: Clock, scope: TenantScope, org_id: str) -> OrgCounts:
    """Counts for dashboards, each gated by the permission that lists those items."""
    scope.require(org_id, Permission.ORG_READ)

    async def gated(permission: Permission, count: Callable[[], Awaitable[int]]) -> int | None:
        return await count() if scope.allows(org_id, permission) else None

    return OrgCounts(
        projects=await gated(
            Permission.PROJECTS_READ, lambda: repository.count_projects(db, scope, org_id)
        ),
        members=await gated(
            Permission.MEMBERS_READ, lambda: repository.count_members(db, scope, org_id)
        ),
        active_api_keys=await gated(
            Permission.API_KEYS_READ,
            lambda: repository.count_active_api_keys(db, scope, org_id, clock.now()),
        ),
    )


# Provider support ---------------------------------------------------------------------------
# Operators are not members, so these take no TenantScope. The only caller is operator
# access approval (control_plane.sovereignty.access), which asks only under a grant the
# tenant approved and records every use in the tenant's ledger.


@dataclass(frozen=True)
class SupportView:
    """What provider support may see of an organization: names, projects, a member count."""

    org: OrgRead
    member_count: int
    projects: list[ProjectRead]


async def find_org(db: AsyncSession, ref: str) -> OrgRead | None:
    """A live organization by id or slug (None when there is none)."""
    column = Organization.id if ref.startswith("org_") else Organization.slug
    query = select(Organization).where(column == ref, Organization.deleted_at.is_(None))
    org = (await db.execute(query)).scalar_one_or_none()
    return None if org is None else org_read(org, None)


async def support_view(db: AsyncSession, org_id: str, max_projects: int = 500) -> SupportView:
    """The organization's projects and member count (no keys, no member identities)."""
    org = await find_org(db, org_id)
    if org is None:
        raise NotFound(detail="No such organization.")
    members = await db.execute(
        select(func.count()).select_from(Membership).where(Membership.org_id == org_id)
    )
    rows = await db.execute(
        select(Project).where(Project.org_id == org_id).order_by(Project.id).limit(max_projects)
    )
    return SupportView(
        org=org,
        member_count=int(members.scalar_one()),
        projects=[project_read(p) for p in rows.scalars()],
    )


async def existing_ids(db: AsyncSession, org_ids: set[str]) -> set[str]:
    """Which of ``org_ids`` name organizations that exist (trusted callers: ingest)."""
    if not org_ids:
        return set()
    rows = await db.scalars(select(Organization.id).where(Organization.id.in_(sorted(org_ids))))
    return set(rows)
