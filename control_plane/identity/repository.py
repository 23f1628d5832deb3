"""Identity queries. Tenant-facing ones take a TenantScope and filter with it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from sqlalchemy import Row, Select, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db.filters import bound_one_of, one_of, one_or_all
from control_plane.errors import NotFound
from control_plane.http.pagination import PageRequest
from control_plane.identity.authz import TenantScope
from control_plane.identity.models import ApiKey, Membership, Organization, Project, User


async def user_by_email(db: AsyncSession, email: str) -> User | None:
    return (
        await db.execute(select(User).where(User.email == email.strip().lower()))
    ).scalar_one_or_none()


@lru_cache(maxsize=8)
def _orgs_query(one: bool, after: bool) -> Select[Organization]:
    """Built once per shape: the portal's organization switcher runs it on every page."""
    query = select(Organization).where(bound_one_of(Organization.id, "org_ids", one))
    if after:
        query = query.where(Organization.id > bindparam("after"))
    return query.order_by(Organization.id).limit(bindparam("limit"))


async def orgs_of_user(
    db: AsyncSession, org_ids: frozenset[str], page: PageRequest
) -> Sequence[Organization]:
    ids = sorted(org_ids)
    if not ids:
        return []
    query = _orgs_query(len(ids) == 1, page.after is not None)
    values = {"org_ids": one_or_all(ids), "after": page.after, "limit": page.limit + 1}
    return (await db.execute(query, values)).scalars().all()


async def orgs_by_id(db: AsyncSession, org_ids: frozenset[str]) -> Sequence[Organization]:
    query = select(Organization).where(one_of(Organization.id, org_ids))
    return (await db.execute(query)).scalars().all()


async def org_in_scope(db: AsyncSession, scope: TenantScope, org_id: str) -> Organization:
    scope.require(org_id)
    org = await db.get(Organization, org_id)
    if org is None:  # deleted concurrently
        raise NotFound(detail="No such organization.")
    return org


async def members(
    db: AsyncSession, scope: TenantScope, org_id: str, page: PageRequest
) -> Sequence[tuple[Membership, User]]:
    scope.require(org_id)
    query = (
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(scope.org_filter(Membership.org_id), Membership.org_id == org_id)
    )
    if page.after:
        query = query.where(Membership.user_id > page.after)
    rows = await db.execute(query.order_by(Membership.user_id).limit(page.limit + 1))
    return [(m, u) for m, u in rows.all()]


async def membership(
    db: AsyncSession, scope: TenantScope, org_id: str, user_id: str
) -> Membership | None:
    scope.require(org_id)
    return (
        await db.execute(
            select(Membership).where(
                scope.org_filter(Membership.org_id),
                Membership.org_id == org_id,
                Membership.user_id == user_id,
            )
        )
    ).scalar_one_or_none()


async def owner_count(db: AsyncSession, org_id: str) -> int:
    return int(
        (
            await db.execute(
                select(func.count())
                .select_from(Membership)
                .where(Membership.org_id == org_id, Membership.role == "owner")
            )
        ).scalar_one()
    )


PROJECT_COLUMNS = (
    Project.id,
    Project.org_id,
    Project.slug,
    Project.name,
    Project.description,
    Project.created_at,
)


@lru_cache(maxsize=8)
def _projects_query(after: bool, one_project: bool) -> Select[str, str, str, str, str, datetime]:
    """Built once per shape: statement construction costs more than the query itself."""
    query = select(*PROJECT_COLUMNS).where(Project.org_id == bindparam("org_id"))
    if one_project:
        query = query.where(Project.id == bindparam("project_id"))
    if after:
        query = query.where(Project.id > bindparam("after"))
    return query.order_by(Project.id).limit(bindparam("limit"))


async def projects(
    db: AsyncSession, scope: TenantScope, org_id: str, page: PageRequest
) -> Sequence[Row[str, str, str, str, str, datetime]]:
    """Plain rows (no ORM identity map): this list is on the hottest read path."""
    scope.require(org_id)
    query = _projects_query(page.after is not None, scope.project_id is not None)
    params = {
        "org_id": org_id,
        "project_id": scope.project_id,
        "after": page.after,
        "limit": page.limit + 1,
    }
    return (await db.execute(query, params)).all()


async def project(db: AsyncSession, scope: TenantScope, project_id: str) -> Project | None:
    """A project the caller may see at all (any role), whatever the scope's permission."""
    query = select(Project).where(Project.id == project_id, scope.visible_filter(Project.org_id))
    if (only := scope.project_filter(Project.id)) is not None:
        query = query.where(only)
    return (await db.execute(query)).scalar_one_or_none()


async def api_keys(
    db: AsyncSession, scope: TenantScope, project_id: str, page: PageRequest
) -> Sequence[ApiKey]:
    query = select(ApiKey).where(scope.org_filter(ApiKey.org_id), ApiKey.project_id == project_id)
    if page.after:
        query = query.where(ApiKey.id > page.after)
    return (await db.execute(query.order_by(ApiKey.id).limit(page.limit + 1))).scalars().all()


async def api_key(db: AsyncSession, scope: TenantScope, key_id: str) -> ApiKey | None:
    query = select(ApiKey).where(ApiKey.id == key_id, scope.visible_filter(ApiKey.org_id))
    if (only := scope.project_filter(ApiKey.project_id)) is not None:
        query = query.where(only)
    return (await db.execute(query)).scalar_one_or_none()


_COUNT_PROJECTS = (
    select(func.count()).select_from(Project).where(Project.org_id == bindparam("org_id"))
)
_COUNT_MEMBERS = (
    select(func.count()).select_from(Membership).where(Membership.org_id == bindparam("org_id"))
)


async def count_projects(db: AsyncSession, scope: TenantScope, org_id: str) -> int:
    """(The dashboard counts are built once: building costs as much CPU as running.)"""
    scope.require(org_id)
    if scope.project_id is not None:  # a project key sees its own project only
        query = _COUNT_PROJECTS.where(Project.id == scope.project_id)
        return int((await db.execute(query, {"org_id": org_id})).scalar_one())
    return int((await db.execute(_COUNT_PROJECTS, {"org_id": org_id})).scalar_one())


async def count_members(db: AsyncSession, scope: TenantScope, org_id: str) -> int:
    scope.require(org_id)
    return int((await db.execute(_COUNT_MEMBERS, {"org_id": org_id})).scalar_one())


async def count_active_api_keys(
    db: AsyncSession, scope: TenantScope, org_id: str, now: datetime
) -> int:
    query = select(func.count()).select_from(ApiKey)
    query = query.where(
        scope.org_filter(ApiKey.org_id),
        ApiKey.org_id == org_id,
        ApiKey.revoked_at.is_(None),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
    )
    if (only := scope.project_filter(ApiKey.project_id)) is not None:
        query = query.where(only)
    return int((await db.execute(query)).scalar_one())
