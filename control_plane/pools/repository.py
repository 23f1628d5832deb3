"""Queries of the pools domain; tenant-facing ones take a TenantScope."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.identity.authz import TenantScope
from control_plane.pools.models import Pool, PoolNode, PoolWindow
from control_plane.pools.schedule import Window


@dataclass
class Loaded:
    """A pool with its member node ids and windows, ready for the window math."""

    pool: Pool
    node_ids: list[str] = field(default_factory=list)
    windows: list[PoolWindow] = field(default_factory=list)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.pool.timezone)

    @property
    def drain(self) -> timedelta:
        return timedelta(minutes=self.pool.drain_minutes)

    def grants(self) -> list[Window]:
        return [window_of(w) for w in self.windows]


def window_of(row: PoolWindow) -> Window:
    days = frozenset(d for d in range(7) if row.days & (1 << d))
    return Window(row.id, row.org_id, row.project_id, days, row.start_minute, row.end_minute)


async def load(
    db: AsyncSession,
    *,
    region: str | None = None,
    pool_ids: Sequence[str] | None = None,
    node_ids: Sequence[str] | None = None,
) -> list[Loaded]:
    """Pools (by region and name) matching every filter given, with nodes and windows."""
    query = select(Pool)
    if region is not None:
        query = query.where(Pool.region_code == region)
    if pool_ids is not None:
        query = query.where(Pool.id.in_(list(pool_ids)))
    if node_ids is not None:
        members = select(PoolNode.pool_id).where(PoolNode.node_id.in_(list(node_ids)))
        query = query.where(Pool.id.in_(members))
    pools = {p.id: Loaded(p) for p in (await db.execute(query)).scalars()}
    if not pools:
        return []
    ids = list(pools)
    for node in (await db.execute(select(PoolNode).where(PoolNode.pool_id.in_(ids)))).scalars():
        pools[node.pool_id].node_ids.append(node.node_id)
    windows = select(PoolWindow).where(PoolWindow.pool_id.in_(ids)).order_by(PoolWindow.id)
    for window in (await db.execute(windows)).scalars():
        pools[window.pool_id].windows.append(window)
    return sorted(pools.values(), key=lambda p: (p.pool.region_code, p.pool.name))


async def tenant_pools(db: AsyncSession, scope: TenantScope, org_id: str) -> list[Loaded]:
    """Pools with a window granted to ``org_id`` (an API key: to its project or the whole
    organization), each carrying only those windows."""
    query = select(PoolWindow).where(
        PoolWindow.org_id == org_id, scope.org_filter(PoolWindow.org_id)
    )
    if scope.project_id:
        query = query.where(
            (PoolWindow.project_id.is_(None)) | (PoolWindow.project_id == scope.project_id)
        )
    mine = list((await db.execute(query.order_by(PoolWindow.id))).scalars())
    pools = {p.pool.id: p for p in await load(db, pool_ids=sorted({w.pool_id for w in mine}))}
    for loaded in pools.values():
        loaded.windows = [w for w in mine if w.pool_id == loaded.pool.id]
    return sorted(pools.values(), key=lambda p: (p.pool.region_code, p.pool.name))
