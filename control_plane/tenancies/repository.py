"""Queries of the tenancies domain. Tenant-facing ones take a TenantScope."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db.filters import one_of
from control_plane.errors import NotFound
from control_plane.http.pagination import PageRequest
from control_plane.identity.authz import TenantScope
from control_plane.inventory.models import Node
from control_plane.tenancies.models import GpuAllocation, Tenancy, TenancyEvent


def _visible(scope: TenantScope, org_id: str) -> list[ColumnElement[bool]]:
    """The filters of the tenancies of ``org_id`` that ``scope`` may see (refused outright
    when the organization is not the scope's)."""
    scope.require(org_id)
    filters = [scope.org_filter(Tenancy.org_id), Tenancy.org_id == org_id]
    project = scope.project_filter(Tenancy.project_id)
    if project is not None:
        filters.append(project)
    return filters


async def tenant_tenancy(
    db: AsyncSession, scope: TenantScope, org_id: str, tenancy_id: str, *, for_update: bool = False
) -> Tenancy:
    query = select(Tenancy).where(*_visible(scope, org_id), Tenancy.id == tenancy_id)
    if for_update:
        query = query.with_for_update()
    tenancy = (await db.execute(query)).scalar_one_or_none()
    if tenancy is None:
        raise NotFound(detail="No such tenancy.")
    return tenancy


async def tenant_tenancy_names(
    db: AsyncSession, scope: TenantScope, org_id: str, tenancy_ids: Sequence[str]
) -> dict[str, str]:
    """Id -> name of those of the tenancies the scope may see (others are left out)."""
    visible = _visible(scope, org_id)
    if not tenancy_ids:
        return {}
    query = select(Tenancy.id, Tenancy.name).where(
        *visible, Tenancy.id.in_(sorted(set(tenancy_ids)))
    )
    return {tenancy_id: name for tenancy_id, name in await db.execute(query)}


async def tenant_tenancies(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    page: PageRequest,
    *,
    state: str | None = None,
    kind: str | None = None,
    region: str | None = None,
) -> Sequence[Tenancy]:
    """Newest first (ids sort by creation time)."""
    query = select(Tenancy).where(*_visible(scope, org_id))
    if state:
        query = query.where(Tenancy.state == state)
    if kind:
        query = query.where(Tenancy.kind == kind)
    if region:
        query = query.where(Tenancy.region_code == region)
    if page.after:
        query = query.where(Tenancy.id < page.after)
    rows = await db.execute(query.order_by(Tenancy.id.desc()).limit(page.limit + 1))
    return rows.scalars().all()


async def tenant_tenancy_spans(
    db: AsyncSession, scope: TenantScope, org_id: str, limit: int
) -> Sequence[Row[str, str, int, int, bool, datetime, datetime | None]]:
    """The newest ``limit`` tenancies' state, region, size and lifetime (newest first), in
    one query of those columns only."""
    query = select(
        Tenancy.state, Tenancy.region_code, Tenancy.gpus_per_node, Tenancy.node_count,
        Tenancy.simulated, Tenancy.created_at, Tenancy.released_at,
    ).where(*_visible(scope, org_id))  # fmt: skip
    return (await db.execute(query.order_by(Tenancy.id.desc()).limit(limit))).all()


async def events_of(db: AsyncSession, tenancy_id: str, page: PageRequest) -> Sequence[TenancyEvent]:
    """Oldest first: a timeline reads forwards."""
    query = select(TenancyEvent).where(TenancyEvent.tenancy_id == tenancy_id)
    if page.after:
        query = query.where(TenancyEvent.id > page.after)
    rows = await db.execute(query.order_by(TenancyEvent.id).limit(page.limit + 1))
    return rows.scalars().all()


def _held_by(tenancy_ids: Sequence[str]) -> tuple[ColumnElement[bool], ...]:
    """The allocations the tenancies hold now (not released)."""
    return one_of(GpuAllocation.tenancy_id, set(tenancy_ids)), GpuAllocation.released_at.is_(None)


async def live_holdings(
    db: AsyncSession, tenancy_ids: Sequence[str]
) -> Sequence[Row[str, str, str, int, int]]:
    """The GPUs the tenancies hold now, with the hostname of the node of each, in one query
    of those columns: ``(tenancy id, node id, hostname, GPU index, milli)``, by hostname
    then index."""
    if not tenancy_ids:
        return []
    query = (
        select(GpuAllocation.tenancy_id, GpuAllocation.node_id, Node.hostname,
               GpuAllocation.gpu_index, GpuAllocation.milli)
        .join(Node, Node.id == GpuAllocation.node_id)
        .where(*_held_by(tenancy_ids))
        .order_by(Node.hostname, GpuAllocation.gpu_index)
    )  # fmt: skip
    return (await db.execute(query)).all()


async def live_allocations(
    db: AsyncSession, tenancy_ids: Sequence[str]
) -> dict[str, list[GpuAllocation]]:
    if not tenancy_ids:
        return {}
    rows = await db.execute(
        select(GpuAllocation)
        .where(*_held_by(tenancy_ids))
        .order_by(GpuAllocation.node_id, GpuAllocation.gpu_index)
    )
    result: dict[str, list[GpuAllocation]] = {}
    for allocation in rows.scalars():
        result.setdefault(allocation.tenancy_id, []).append(allocation)
    return result
