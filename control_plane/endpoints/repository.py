"""Queries of the endpoints domain. Tenant-facing ones take a TenantScope."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
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


async def tenant_endpoints(
    db: AsyncSession, scope: TenantScope, org_id: str, page: PageRequest
) -> Sequence[Endpoint]:
    """Live endpoints, newest first."""
    scope.require(org_id)
    query = select(Endpoint).where(
        scope.org_filter(Endpoint.org_id),
        Endpoint.org_id == org_id,
        Endpoint.deleted_at.is_(None),
    )
    project = scope.project_filter(Endpoint.project_id)
    if project is not None:
        query = query.where(project)
    if page.after:
        query = query.where(Endpoint.id < page.after)
    rows = await db.execute(query.order_by(Endpoint.id.desc()).limit(page.limit + 1))
    return rows.scalars().all()


async def versions_of(db: AsyncSession, endpoint_ids: Sequence[str]) -> list[EndpointVersion]:
    if not endpoint_ids:
        return []
    query = (
        select(EndpointVersion)
        .where(EndpointVersion.endpoint_id.in_(list(endpoint_ids)))
        .order_by(EndpointVersion.endpoint_id, EndpointVersion.number)
    )
    return list((await db.execute(query)).scalars().all())


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
