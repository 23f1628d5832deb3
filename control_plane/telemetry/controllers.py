"""Telemetry API: node agents send GPU samples; operators issue and revoke the agents'
credentials; tenants read their GPUs' hourly utilization; operators read the fleet's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import FieldError, InvalidInput
from control_plane.http.idempotency import SECRET_ANSWER
from control_plane.identity.authz import ProviderScope, TenantScope, node_agent, provider, tenant
from control_plane.identity.roles import Permission, ProviderPermission
from control_plane.settings import Settings
from control_plane.telemetry import credentials, queries
from control_plane.telemetry.credentials import NodeIdentity
from control_plane.telemetry.ingest import ingest_batch
from control_plane.telemetry.schemas import (
    BatchIn,
    BatchResult,
    CredentialCreated,
    CredentialRead,
    FleetReport,
    UtilizationReport,
)

__all__ = ["ROUTES"]

NodeId = Annotated[str, Parameter(max_length=40)]
OrgId = Annotated[str, Parameter(max_length=40)]
_MAX_DAYS = 31


class TelemetryIngestController(Controller):
    path = "/api/v1/telemetry"
    tags = ["telemetry"]

    @post(
        "/batches",
        opt={**node_agent(), "data_plane": True},
        status_code=HTTP_200_OK,
        summary="A node agent's batch of GPU samples (idempotent on the batch id)",
    )
    async def ingest(
        self, request: Request[Any, Any, Any], data: BatchIn, db: AsyncSession, clock: Clock,
        settings: Settings,
    ) -> BatchResult:  # fmt: skip
        node: NodeIdentity = request.scope["state"]["node"]
        now = clock.now()
        result = await ingest_batch(db, node.node_id, data, now,
                                    timedelta(hours=settings.telemetry_late_hours))  # fmt: skip
        await credentials.touch(db, node.credential_id, now)
        return result


class AgentCredentialController(Controller):
    path = "/api/v1/nodes/{node_id:str}/agent-credentials"
    tags = ["telemetry"]

    @post("/", opt=provider(ProviderPermission.NODES_ENROLL), cache_control=SECRET_ANSWER,
          summary="Issue a node agent credential (shown once)")  # fmt: skip
    async def issue(
        self, node_id: NodeId, operator: ProviderScope, db: AsyncSession, clock: Clock
    ) -> CredentialCreated:
        return await credentials.issue(db, clock, node_id, operator.principal.ref)

    @get("/", opt=provider(ProviderPermission.INVENTORY_READ), summary="The node's credentials")
    async def list_credentials(
        self, node_id: NodeId, operator: ProviderScope, db: AsyncSession
    ) -> list[CredentialRead]:
        return await credentials.list_for_node(db, node_id)

    @delete(
        "/{credential_id:str}",
        opt=provider(ProviderPermission.NODES_ENROLL),
        status_code=HTTP_200_OK,
        summary="Revoke a credential (effective within seconds)",
    )
    async def revoke(
        self, node_id: NodeId, credential_id: Annotated[str, Parameter(max_length=40)],
        operator: ProviderScope, db: AsyncSession, clock: Clock, request: Request[Any, Any, Any],
    ) -> CredentialRead:  # fmt: skip
        revoked = await credentials.revoke(db, clock, node_id, credential_id)
        request.app.state.node_authenticator.forget()  # this replica at once; others within seconds
        return revoked


class UtilizationController(Controller):
    path = "/api/v1/orgs/{org_id:str}/utilization"
    tags = ["telemetry"]

    @get("/", opt=tenant(Permission.TENANCIES_READ),
         summary="Hourly utilization, memory and energy of the organization's GPUs")  # fmt: skip
    async def utilization(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession, clock: Clock,
        since: datetime | None = None, until: datetime | None = None,
        tenancy: Annotated[str | None, Parameter(max_length=40)] = None,
        endpoint: Annotated[str | None, Parameter(max_length=40)] = None,
    ) -> UtilizationReport:  # fmt: skip
        start, end = _window(clock, since, until)
        return await queries.org_utilization(db, tenant, org_id, start, end, tenancy, endpoint)


class FleetController(Controller):
    path = "/api/v1/fleet/utilization"
    tags = ["telemetry"]

    @get("/", opt=provider(ProviderPermission.INVENTORY_READ),
         summary="Fleet utilization, allocation and energy per region and hour")  # fmt: skip
    async def fleet(
        self, operator: ProviderScope, db: AsyncSession, clock: Clock,
        since: datetime | None = None, until: datetime | None = None,
    ) -> FleetReport:  # fmt: skip
        start, end = _window(clock, since, until)
        return await queries.fleet_utilization(db, start, end)


def _window(
    clock: Clock, since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    now = clock.now()
    end = _utc(until) or now
    start = _utc(since) or end - timedelta(days=7)
    if start >= end:
        raise InvalidInput(detail="since must be before until.",
                           errors=[FieldError("query.since", "not before until")])  # fmt: skip
    if end - start > timedelta(days=_MAX_DAYS):
        raise InvalidInput(
            detail=f"At most {_MAX_DAYS} days at a time.",
            errors=[FieldError("query.since", f"more than {_MAX_DAYS} days")],
        )
    return start.replace(minute=0, second=0, microsecond=0), end


def _utc(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


ROUTES = [TelemetryIngestController, AgentCredentialController, UtilizationController,
          FleetController]  # fmt: skip
