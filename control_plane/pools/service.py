"""Pools: operators set nodes aside and lend them to organizations by weekly windows;
tenants see the windows granted to them. Services never commit; the request does.

Outside every window a pool's nodes are held for nobody: the operator set them aside, so
they take no new work until a window opens (they are not handed back to the public).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import Conflict, FieldError, InvalidInput, NotFound
from control_plane.identity import organizations
from control_plane.identity.authz import TenantScope
from control_plane.identity.roles import Permission
from control_plane.ids import new_id
from control_plane.inventory.capacity import capacity_nodes, region_currencies
from control_plane.pools import repository, schedule
from control_plane.pools.models import Pool, PoolNode, PoolWindow
from control_plane.pools.repository import Loaded, window_of
from control_plane.pools.schemas import (
    Opening,
    PoolCreate,
    PoolNodeRead,
    PoolNodesSet,
    PoolRead,
    TenantOpening,
    TenantPool,
    WindowCreate,
    WindowRead,
)

MAX_SCHEDULE_DAYS = 31


async def create_pool(db: AsyncSession, clock: Clock, region: str, data: PoolCreate) -> PoolRead:
    if region not in await region_currencies(db):
        raise NotFound(detail=f"No region {region!r}.")
    if schedule.zone(data.timezone) is None:
        raise InvalidInput(
            detail=f"{data.timezone!r} is not an IANA time zone (e.g. America/Toronto).",
            errors=[FieldError("body.timezone", "unknown time zone")],
        )
    pool = Pool(
        id=new_id("pool"), region_code=region, name=data.name, description=data.description,
        timezone=data.timezone, drain_minutes=data.drain_minutes, created_at=clock.now(),
    )  # fmt: skip
    savepoint = await db.begin_nested()
    db.add(pool)
    try:
        await db.flush()
    except IntegrityError as exc:
        await savepoint.rollback()
        raise Conflict(
            detail=f"Region {region} already has a pool named {data.name!r}.",
            errors=[FieldError("body.name", "already used in this region")],
        ) from exc
    await savepoint.commit()
    return await _read(db, Loaded(pool), clock.now())


async def list_pools(db: AsyncSession, clock: Clock, region: str) -> list[PoolRead]:
    return [await _read(db, p, clock.now()) for p in await repository.load(db, region=region)]


async def get_pool(db: AsyncSession, clock: Clock, region: str, pool_id: str) -> PoolRead:
    return await _read(db, await _one(db, region, pool_id), clock.now())


async def delete_pool(db: AsyncSession, region: str, pool_id: str) -> None:
    loaded = await _one(db, region, pool_id)
    await db.delete(loaded.pool)
    await db.flush()


async def set_nodes(
    db: AsyncSession, clock: Clock, region: str, pool_id: str, data: PoolNodesSet
) -> PoolRead:
    """Make the pool's members exactly ``node_ids`` (nodes of its region, in no other pool)."""
    loaded = await _one(db, region, pool_id)
    wanted = sorted(set(data.node_ids))
    found = {n.id: n for n in await capacity_nodes(db, node_ids=wanted)}
    for node_id in wanted:
        node = found.get(node_id)
        if node is None or node.region_code != region:
            raise InvalidInput(
                detail=f"Node {node_id} is not a node of {region}.",
                errors=[FieldError("body.node_ids", f"{node_id}: no such node in {region}")],
            )
    taken = await db.execute(
        select(PoolNode.node_id, Pool.name)
        .join(Pool, Pool.id == PoolNode.pool_id)
        .where(PoolNode.node_id.in_(wanted), PoolNode.pool_id != pool_id)
    )
    for node_id, other in taken:
        raise Conflict(
            detail=f"Node {found[node_id].hostname} is already in pool {other!r}.",
            errors=[FieldError("body.node_ids", f"{node_id}: in pool {other}")],
        )
    await db.execute(delete(PoolNode).where(PoolNode.pool_id == pool_id))
    db.add_all(PoolNode(node_id=n, pool_id=pool_id) for n in wanted)
    await db.flush()
    loaded.node_ids = wanted
    return await _read(db, loaded, clock.now())


async def add_window(
    db: AsyncSession, clock: Clock, region: str, pool_id: str, data: WindowCreate
) -> WindowRead:
    loaded = await _one(db, region, pool_id)
    org = await organizations.find_org(db, data.org_id)
    if org is None:
        raise InvalidInput(
            detail=f"No organization {data.org_id!r}.",
            errors=[FieldError("body.org_id", "unknown organization")],
        )
    if data.project_id is not None:
        projects = {p.id for p in (await organizations.support_view(db, org.id)).projects}
        if data.project_id not in projects:
            raise InvalidInput(
                detail=f"Organization {org.slug} has no project {data.project_id!r}.",
                errors=[FieldError("body.project_id", "not a project of the organization")],
            )
    days = sum(1 << schedule.DAY_NAMES.index(d) for d in set(data.days))
    row = PoolWindow(
        id=new_id("pwin"), pool_id=pool_id, org_id=org.id, project_id=data.project_id,
        days=days, start_minute=schedule.parse_hhmm(data.start),
        end_minute=schedule.parse_hhmm(data.end), created_at=clock.now(),
    )  # fmt: skip
    clash = schedule.overlapping(window_of(row), loaded.grants())
    if clash is not None:
        other = _window_read(next(w for w in loaded.windows if w.id == clash.id))
        raise InvalidInput(
            detail=f"The window overlaps window {other.id} ({', '.join(other.days)} "
            f"{other.start}-{other.end}) of pool {loaded.pool.name}.",
            errors=[FieldError("body.start", f"overlaps window {other.id}")],
        )
    db.add(row)
    await db.flush()
    return _window_read(row)


async def remove_window(db: AsyncSession, region: str, pool_id: str, window_id: str) -> None:
    loaded = await _one(db, region, pool_id)
    window = next((w for w in loaded.windows if w.id == window_id), None)
    if window is None:
        raise NotFound(detail=f"Pool {loaded.pool.name} has no window {window_id}.")
    await db.delete(window)
    await db.flush()


async def upcoming(
    db: AsyncSession, clock: Clock, region: str, pool_id: str, days: int
) -> list[Opening]:
    """Concrete openings from now for ``days`` days (the one under way included)."""
    loaded = await _one(db, region, pool_id)
    return _openings(loaded, clock.now(), min(max(days, 1), MAX_SCHEDULE_DAYS))


async def for_org(
    db: AsyncSession, scope: TenantScope, org_id: str, clock: Clock, days: int = 7
) -> list[TenantPool]:
    """The pools lending GPUs to the organization, with its openings over ``days`` days."""
    scope.require(org_id, Permission.TENANCIES_READ)
    now = clock.now()
    result = []
    for loaded in await repository.tenant_pools(db, scope, org_id):
        nodes = await capacity_nodes(db, node_ids=loaded.node_ids)
        openings = [
            TenantOpening(project_id=o.project_id, start=o.start, end=o.end,
                          drain_from=o.drain_from, open_now=o.start <= now < o.drain_from)
            for o in _openings(loaded, now, days)
        ]  # fmt: skip
        result.append(
            TenantPool(
                name=loaded.pool.name, region=loaded.pool.region_code,
                timezone=loaded.pool.timezone, gpus=sum(len(n.gpus) for n in nodes),
                gpu_model=", ".join(sorted({n.gpu_model_code for n in nodes})),
                openings=openings,
            )
        )  # fmt: skip
    return result


def _openings(loaded: Loaded, now: datetime, days: int) -> list[Opening]:
    found = schedule.occurrences(loaded.grants(), loaded.tz, now, now + timedelta(days=days))
    return [
        Opening(window_id=o.window_id, org_id=o.org_id, project_id=o.project_id, start=o.start,
                end=o.end, drain_from=schedule.placeable_until(o, loaded.drain))
        for o in found
    ]  # fmt: skip


async def _one(db: AsyncSession, region: str, pool_id: str) -> Loaded:
    found = await repository.load(db, region=region, pool_ids=[pool_id])
    if not found:
        raise NotFound(detail=f"Region {region} has no pool {pool_id}.")
    return found[0]


async def _read(db: AsyncSession, loaded: Loaded, now: datetime) -> PoolRead:
    pool = loaded.pool
    nodes = await capacity_nodes(db, node_ids=loaded.node_ids) if loaded.node_ids else []
    current = schedule.active(loaded.grants(), loaded.tz, now)
    return PoolRead(
        id=pool.id, region=pool.region_code, name=pool.name, description=pool.description,
        timezone=pool.timezone, drain_minutes=pool.drain_minutes,
        nodes=[PoolNodeRead(id=n.id, hostname=n.hostname, gpu_model=n.gpu_model_code,
                            gpu_count=len(n.gpus)) for n in nodes],
        windows=[_window_read(w) for w in loaded.windows], created_at=pool.created_at,
        open_to=current.org_id if current else None,
    )  # fmt: skip


def _window_read(row: PoolWindow) -> WindowRead:
    window = window_of(row)
    return WindowRead(
        id=row.id, org_id=row.org_id, project_id=row.project_id,
        days=[schedule.DAY_NAMES[d] for d in sorted(window.days)],
        start=schedule.hhmm(row.start_minute), end=schedule.hhmm(row.end_minute),
    )  # fmt: skip
