"""Queries of the endpoints domain. Tenant-facing ones take a TenantScope."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.endpoints.models import Endpoint, EndpointEvent, EndpointVersion
from control_plane.errors import NotFound
from control_plane.http.pagination import PageRequest
from control_plane.identity.authz import TenantScope


async def tenant_endpoint(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    ref: str,
    *,
    for_update: bool = False,
    include_deleted: bool = False,
) -> Endpoint:
    """An endpoint by id or by name: the live one, or (``include_deleted``) the newest of
    that name, deleted or not."""
    scope.require(org_id)
    key = Endpoint.id == ref if ref.startswith("ep_") else Endpoint.name == ref
    query = select(Endpoint).where(
        scope.org_filter(Endpoint.org_id), Endpoint.org_id == org_id, key
    )
    if not include_deleted:
        query = query.where(Endpoint.deleted_at.is_(None))
    project = scope.project_filter(Endpoint.project_id)
    if project is not None:
        query = query.where(project)
    if for_update:
        query = query.with_for_update()
    query = query.order_by(Endpoint.id.desc()).limit(1)
    endpoint = (await db.execute(query)).scalars().first()
    if endpoint is None:
        raise NotFound(detail="No such endpoint.")
    return endpoint


@lru_cache(maxsize=8)
def _endpoints_query(project: bool, after: bool) -> Select[Endpoint]:
    """Built once per shape: building a statement costs as much CPU as running it."""
    query = select(Endpoint).where(
        Endpoint.org_id == bindparam("org_id"), Endpoint.deleted_at.is_(None)
    )
    if project:
        query = query.where(Endpoint.project_id == bindparam("project_id"))
    if after:
        query = query.where(Endpoint.id < bindparam("after"))
    return query.order_by(Endpoint.id.desc()).limit(bindparam("limit"))


async def tenant_endpoints(
    db: AsyncSession, scope: TenantScope, org_id: str, page: PageRequest
) -> Sequence[Endpoint]:
    """Live endpoints, newest first."""
    scope.require(org_id)
    query = _endpoints_query(scope.project_id is not None, page.after is not None)
    values = {"org_id": org_id, "project_id": scope.project_id, "after": page.after,
              "limit": page.limit + 1}  # fmt: skip
    return (await db.execute(query, values)).scalars().all()


_VERSIONS = (
    select(EndpointVersion)
    .where(EndpointVersion.endpoint_id.in_(bindparam("ids", expanding=True)))
    .order_by(EndpointVersion.endpoint_id, EndpointVersion.number)
)


async def versions_of(db: AsyncSession, endpoint_ids: Sequence[str]) -> list[EndpointVersion]:
    if not endpoint_ids:
        return []
    return list((await db.execute(_VERSIONS, {"ids": list(endpoint_ids)})).scalars().all())


async def events_of(
    db: AsyncSession, endpoint_id: str, page: PageRequest
) -> Sequence[EndpointEvent]:
    query = select(EndpointEvent).where(EndpointEvent.endpoint_id == endpoint_id)
    if page.after:
        query = query.where(EndpointEvent.id > page.after)
    query = query.order_by(EndpointEvent.id).limit(page.limit + 1)
    return (await db.execute(query)).scalars().all()


async def live_endpoints(db: AsyncSession) -> list[Endpoint]:
    """Every live endpoint (the gateway's routes, the autoscaler)."""
    query = select(Endpoint).where(Endpoint.deleted_at.is_(None)).order_by(Endpoint.id)
    return list((await db.execute(query)).scalars().all())


async def endpoint_by_id(
    db: AsyncSession, endpoint_id: str, *, for_update: bool = False
) -> Endpoint | None:
    query = select(Endpoint).where(Endpoint.id == endpoint_id)
    if for_update:
        query = query.with_for_update()
    return (await db.execute(query)).scalar_one_or_none()


async def live_name_taken(db: AsyncSession, org_id: str, name: str) -> bool:
    query = select(Endpoint.id).where(
        Endpoint.org_id == org_id, Endpoint.name == name, Endpoint.deleted_at.is_(None)
    )
    return (await db.execute(query)).first() is not None


async def set_io(db: AsyncSession, io_by_version: dict[str, dict[str, object]]) -> None:
    """Record what served versions take and give (read from Triton)."""
    for version_id, io in io_by_version.items():
        await db.execute(
            update(EndpointVersion).where(EndpointVersion.id == version_id).values(io=io)
        )
