"""Queries of the tenancies domain. Tenant-facing ones take a TenantScope."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVarTuple

from sqlalchemy import Row, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db.filters import bound_one_of, one_of, one_or_all
from control_plane.errors import NotFound
from control_plane.http.pagination import PageRequest
from control_plane.identity.authz import TenantScope
from control_plane.inventory.models import Node
from control_plane.tenancies.models import GpuAllocation, Tenancy, TenancyEvent

Columns = TypeVarTuple("Columns")


def _visible(scope: TenantScope, org_id: str) -> dict[str, Any]:
    """The bound values of the filters of the tenancies of ``org_id`` that ``scope`` may see
    (refused outright when the organization is not the scope's: the statements below take
    the organization only from here)."""
    scope.require(org_id)
    return {"org_id": org_id, "project_id": scope.project_id}


def _where_visible(query: Select[*Columns], project: bool) -> Select[*Columns]:
    """``query`` of the tenancies of ``:org_id`` (and ``:project_id``, for a project key)."""
    query = query.where(Tenancy.org_id == bindparam("org_id"))
    return query.where(Tenancy.project_id == bindparam("project_id")) if project else query


# The statements are built once per shape (lru_cache), with their values bound at each
# execution: building one and computing its cache key cost as much CPU as running it
# (~0.27 ms of ~0.53 ms for the holdings query, measured on PostgreSQL).


@lru_cache(maxsize=8)
def _tenancy_query(project: bool, for_update: bool) -> Select[Tenancy]:
    query = _where_visible(select(Tenancy), project).where(Tenancy.id == bindparam("tenancy_id"))
    return query.with_for_update() if for_update else query


async def tenant_tenancy(
    db: AsyncSession, scope: TenantScope, org_id: str, tenancy_id: str, *, for_update: bool = False
) -> Tenancy:
    values = _visible(scope, org_id) | {"tenancy_id": tenancy_id}
    query = _tenancy_query(scope.project_id is not None, for_update)
    tenancy = (await db.execute(query, values)).scalar_one_or_none()
    if tenancy is None:
        raise NotFound(detail="No such tenancy.")
    return tenancy


@lru_cache(maxsize=4)
def _names_query(project: bool) -> Select[str, str]:
    query = select(Tenancy.id, Tenancy.name)
    return _where_visible(query, project).where(Tenancy.id.in_(bindparam("ids", expanding=True)))


async def tenant_tenancy_names(
    db: AsyncSession, scope: TenantScope, org_id: str, tenancy_ids: Sequence[str]
) -> dict[str, str]:
    """Id -> name of those of the tenancies the scope may see (others are left out)."""
    values = _visible(scope, org_id) | {"ids": sorted(set(tenancy_ids))}
    if not tenancy_ids:
        return {}
    rows = await db.execute(_names_query(scope.project_id is not None), values)
    return {tenancy_id: name for tenancy_id, name in rows}


@lru_cache(maxsize=64)
def _tenancies_query(
    project: bool, state: bool, kind: bool, region: bool, after: bool
) -> Select[Tenancy]:
    query = _where_visible(select(Tenancy), project)
    if state:
        query = query.where(Tenancy.state == bindparam("state"))
    if kind:
        query = query.where(Tenancy.kind == bindparam("kind"))
    if region:
        query = query.where(Tenancy.region_code == bindparam("region"))
    if after:
        query = query.where(Tenancy.id < bindparam("after"))
    return query.order_by(Tenancy.id.desc()).limit(bindparam("limit"))


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
    values = _visible(scope, org_id) | {"state": state, "kind": kind, "region": region,
                                        "after": page.after, "limit": page.limit + 1}  # fmt: skip
    query = _tenancies_query(
        scope.project_id is not None, bool(state), bool(kind), bool(region), bool(page.after)
    )
    return (await db.execute(query, values)).scalars().all()


@lru_cache(maxsize=4)
def _spans_query(project: bool) -> Select[str, str, int, int, bool, datetime, datetime | None]:
    query = select(
        Tenancy.state, Tenancy.region_code, Tenancy.gpus_per_node, Tenancy.node_count,
        Tenancy.simulated, Tenancy.created_at, Tenancy.released_at,
    )  # fmt: skip
    return _where_visible(query, project).order_by(Tenancy.id.desc()).limit(bindparam("limit"))


async def tenant_tenancy_spans(
    db: AsyncSession, scope: TenantScope, org_id: str, limit: int
) -> Sequence[Row[str, str, int, int, bool, datetime, datetime | None]]:
    """The newest ``limit`` tenancies' state, region, size and lifetime (newest first), in
    one query of those columns only."""
    values = _visible(scope, org_id) | {"limit": limit}
    return (await db.execute(_spans_query(scope.project_id is not None), values)).all()


@lru_cache(maxsize=4)
def _events_query(after: bool) -> Select[TenancyEvent]:
    query = select(TenancyEvent).where(TenancyEvent.tenancy_id == bindparam("tenancy_id"))
    if after:
        query = query.where(TenancyEvent.id > bindparam("after"))
    return query.order_by(TenancyEvent.id).limit(bindparam("limit"))


async def events_of(db: AsyncSession, tenancy_id: str, page: PageRequest) -> Sequence[TenancyEvent]:
    """Oldest first: a timeline reads forwards."""
    values = {"tenancy_id": tenancy_id, "after": page.after, "limit": page.limit + 1}
    return (await db.execute(_events_query(bool(page.after)), values)).scalars().all()


@lru_cache(maxsize=4)
def _holdings_query(one: bool) -> Select[str, str, str, int, int]:
    held = bound_one_of(GpuAllocation.tenancy_id, "ids", one)
    return (
        select(GpuAllocation.tenancy_id, GpuAllocation.node_id, Node.hostname,
               GpuAllocation.gpu_index, GpuAllocation.milli)
        .join(Node, Node.id == GpuAllocation.node_id)
        .where(held, GpuAllocation.released_at.is_(None))
        .order_by(Node.hostname, GpuAllocation.gpu_index)
    )  # fmt: skip


async def live_holdings(
    db: AsyncSession, tenancy_ids: Sequence[str]
) -> Sequence[Row[str, str, str, int, int]]:
    """The GPUs the tenancies hold now, with the hostname of the node of each, in one query
    of those columns: ``(tenancy id, node id, hostname, GPU index, milli)``, by hostname
    then index."""
    ids = sorted(set(tenancy_ids))
    if not ids:
        return []
    query = _holdings_query(len(ids) == 1)
    return (await db.execute(query, {"ids": one_or_all(ids)})).all()


@lru_cache(maxsize=4)
def _tenant_holdings_query(project: bool) -> Select[str, str, str, int, int]:
    query = _holdings_query(True).join(Tenancy, Tenancy.id == GpuAllocation.tenancy_id)
    return _where_visible(query, project)


async def tenant_holdings(
    db: AsyncSession, scope: TenantScope, org_id: str, tenancy_id: str
) -> Sequence[Row[str, str, str, int, int]]:
    """``live_holdings`` of one tenancy, if the scope may see it (else none)."""
    values = _visible(scope, org_id) | {"ids": tenancy_id}
    return (await db.execute(_tenant_holdings_query(scope.project_id is not None), values)).all()


async def live_allocations(
    db: AsyncSession, tenancy_ids: Sequence[str]
) -> dict[str, list[GpuAllocation]]:
    if not tenancy_ids:
        return {}
    rows = await db.execute(
        select(GpuAllocation)
        .where(
            one_of(GpuAllocation.tenancy_id, set(tenancy_ids)),
            GpuAllocation.released_at.is_(None),
        )
        .order_by(GpuAllocation.node_id, GpuAllocation.gpu_index)
    )
    result: dict[str, list[GpuAllocation]] = {}
    for allocation in rows.scalars():
        result.setdefault(allocation.tenancy_id, []).append(allocation)
    return result
