"""Inventory API: regions and the GPU catalog (any signed-in caller), nodes (operators)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.http.pagination import Page, PageRequest
from control_plane.identity.authz import ProviderScope, authenticated, provider
from control_plane.identity.roles import ProviderPermission
from control_plane.inventory import service
from control_plane.inventory.lifecycle import NodeState
from control_plane.inventory.schemas import (
    GpuModelCreate,
    GpuModelRead,
    InventorySummary,
    NodeEventRead,
    NodeImport,
    NodeImportResult,
    NodeRead,
    NodeTransition,
    RegionCreate,
    RegionRead,
    RegionUpdate,
    SiteCreate,
    SiteRead,
)

RegionCode = Annotated[str, Parameter(max_length=32)]
NodeId = Annotated[str, Parameter(max_length=40)]
Filter = Annotated[str | None, Parameter(max_length=64)]


class RegionController(Controller):
    path = "/api/v1/regions"
    tags = ["inventory"]

    @get("/", opt=authenticated(), summary="Regions, their jurisdiction and sites")
    async def list_regions(self, db: AsyncSession, page: PageRequest) -> Page[RegionRead]:
        return await service.list_regions(db, page)

    @get("/{code:str}", opt=authenticated())
    async def get_region(self, code: RegionCode, db: AsyncSession) -> RegionRead:
        return await service.get_region(db, code)

    @post("/", opt=provider(ProviderPermission.CATALOG_WRITE))
    async def create_region(self, data: RegionCreate, db: AsyncSession, clock: Clock) -> RegionRead:
        return await service.create_region(db, clock, data)

    @patch("/{code:str}", opt=provider(ProviderPermission.CATALOG_WRITE))
    async def update_region(
        self, code: RegionCode, data: RegionUpdate, db: AsyncSession
    ) -> RegionRead:
        return await service.update_region(db, code, data)

    @post("/{code:str}/sites", opt=provider(ProviderPermission.CATALOG_WRITE))
    async def create_site(self, code: RegionCode, data: SiteCreate, db: AsyncSession) -> SiteRead:
        return await service.create_site(db, code, data)


class GpuModelController(Controller):
    path = "/api/v1/gpu-models"
    tags = ["inventory"]

    @get("/", opt=authenticated(), summary="The GPU catalog")
    async def list_gpu_models(self, db: AsyncSession, page: PageRequest) -> Page[GpuModelRead]:
        return await service.list_gpu_models(db, page)

    @post("/", opt=provider(ProviderPermission.CATALOG_WRITE))
    async def create_gpu_model(self, data: GpuModelCreate, db: AsyncSession) -> GpuModelRead:
        return await service.create_gpu_model(db, data)


class NodeController(Controller):
    path = "/api/v1/nodes"
    tags = ["inventory"]

    @get("/", opt=provider(ProviderPermission.INVENTORY_READ), summary="Nodes (operators)")
    async def list_nodes(
        self,
        db: AsyncSession,
        page: PageRequest,
        region: Filter = None,
        node_state: Annotated[NodeState | None, QueryParameter(name="state")] = None,
        gpu_model: Filter = None,
        site: Filter = None,
        hostname: Annotated[
            str | None, Parameter(max_length=253, description="hostname prefix")
        ] = None,
    ) -> Page[NodeRead]:
        return await service.list_nodes(
            db,
            page,
            region=region,
            state=node_state,
            gpu_model=gpu_model,
            site=site,
            hostname_prefix=hostname,
        )

    @get("/summary", opt=provider(ProviderPermission.INVENTORY_READ))
    async def inventory_summary(self, db: AsyncSession) -> InventorySummary:
        return await service.summary(db)

    @get("/{node_id:str}", opt=provider(ProviderPermission.INVENTORY_READ))
    async def get_node(self, node_id: NodeId, db: AsyncSession) -> NodeRead:
        return await service.get_node(db, node_id)

    @get("/{node_id:str}/events", opt=provider(ProviderPermission.INVENTORY_READ))
    async def node_events(
        self, node_id: NodeId, db: AsyncSession, page: PageRequest
    ) -> Page[NodeEventRead]:
        return await service.node_events(db, node_id, page)

    @post(
        "/{node_id:str}/transitions",
        opt=provider(ProviderPermission.NODES_OPERATE),
        status_code=HTTP_200_OK,
        summary="Drain, mark maintenance, return to service, retire",
    )
    async def transition_node(
        self,
        node_id: NodeId,
        data: NodeTransition,
        db: AsyncSession,
        clock: Clock,
        operator: ProviderScope,
    ) -> NodeRead:
        return await service.transition_node(db, clock, operator, node_id, data)

    @post(
        "/import",
        opt=provider(ProviderPermission.NODES_ENROLL),
        status_code=HTTP_200_OK,
        summary="Enrol nodes from CSV or YAML (all or nothing)",
        request_max_body_size=8_000_000,
    )
    async def import_nodes(
        self, data: NodeImport, db: AsyncSession, clock: Clock, operator: ProviderScope
    ) -> NodeImportResult:
        return await service.import_nodes(
            db, clock, operator, data.format, data.content, data.dry_run
        )


ROUTES: list[ControllerRouterHandler] = [RegionController, GpuModelController, NodeController]
