"""Pools API: operators set nodes aside and lend them by weekly windows; tenants see the
windows granted to them."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.identity.authz import ProviderScope, TenantScope, provider, tenant
from control_plane.identity.roles import Permission, ProviderPermission
from control_plane.pools import service
from control_plane.pools.schemas import (
    Opening,
    PoolCreate,
    PoolNodesSet,
    PoolRead,
    TenantPool,
    WindowCreate,
    WindowRead,
)

RegionCode = Annotated[str, Parameter(max_length=32)]
PoolId = Annotated[str, Parameter(max_length=40)]
WindowId = Annotated[str, Parameter(max_length=40)]
OrgId = Annotated[str, Parameter(max_length=40)]
READ = provider(ProviderPermission.INVENTORY_READ)
WRITE = provider(ProviderPermission.CAPACITY_WRITE)


class PoolController(Controller):
    path = "/api/v1/regions/{code:str}/pools"
    tags = ["pools"]

    @get("/", opt=READ, summary="Pools of a region with their nodes and windows")
    async def list_pools(
        self, code: RegionCode, operator: ProviderScope, db: AsyncSession, clock: Clock
    ) -> list[PoolRead]:
        return await service.list_pools(db, clock, code)

    @post("/", opt=WRITE, status_code=HTTP_201_CREATED, summary="Create a pool (no nodes yet)")
    async def create_pool(
        self,
        code: RegionCode,
        data: PoolCreate,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
    ) -> PoolRead:
        return await service.create_pool(db, clock, code, data)

    @get("/{pool_id:str}", opt=READ)
    async def get_pool(
        self, code: RegionCode, pool_id: PoolId, operator: ProviderScope, db: AsyncSession,
        clock: Clock,
    ) -> PoolRead:  # fmt: skip
        return await service.get_pool(db, clock, code, pool_id)

    @delete("/{pool_id:str}", opt=WRITE, status_code=HTTP_204_NO_CONTENT)
    async def delete_pool(
        self, code: RegionCode, pool_id: PoolId, operator: ProviderScope, db: AsyncSession
    ) -> None:
        await service.delete_pool(db, code, pool_id)

    @put("/{pool_id:str}/nodes", opt=WRITE, summary="Set the pool's nodes (replaces them all)")
    async def set_nodes(
        self,
        code: RegionCode,
        pool_id: PoolId,
        data: PoolNodesSet,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
    ) -> PoolRead:
        return await service.set_nodes(db, clock, code, pool_id, data)

    @post(
        "/{pool_id:str}/windows",
        opt=WRITE,
        status_code=HTTP_201_CREATED,
        summary="Lend the pool to an organization (or project) on a weekly window",
    )
    async def add_window(
        self,
        code: RegionCode,
        pool_id: PoolId,
        data: WindowCreate,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
    ) -> WindowRead:
        return await service.add_window(db, clock, code, pool_id, data)

    @delete("/{pool_id:str}/windows/{window_id:str}", opt=WRITE, status_code=HTTP_204_NO_CONTENT)
    async def remove_window(
        self,
        code: RegionCode,
        pool_id: PoolId,
        window_id: WindowId,
        operator: ProviderScope,
        db: AsyncSession,
    ) -> None:
        await service.remove_window(db, code, pool_id, window_id)

    @get("/{pool_id:str}/schedule", opt=READ, summary="Concrete openings of the coming days")
    async def schedule(
        self,
        code: RegionCode,
        pool_id: PoolId,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
        days: Annotated[int, Parameter(ge=1, le=service.MAX_SCHEDULE_DAYS)] = 7,
    ) -> list[Opening]:
        return await service.upcoming(db, clock, code, pool_id, days)


class OrgPoolController(Controller):
    path = "/api/v1/orgs/{org_id:str}/pools"
    tags = ["pools"]

    @get(
        "/",
        opt=tenant(Permission.TENANCIES_READ),
        summary="Pools lending GPUs to the organization: its windows now and for 7 days",
    )
    async def org_pools(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession, clock: Clock
    ) -> list[TenantPool]:
        return await service.for_org(db, tenant, org_id, clock)


ROUTES: list[ControllerRouterHandler] = [PoolController, OrgPoolController]
