"""Costs API: each endpoint's cost per million tokens on an allocation and a usage basis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from billing.costs import service
from billing.costs.schemas import EndpointCost
from control_plane.clock import Clock
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission

OrgId = Annotated[str, Parameter(max_length=40)]


class CostController(Controller):
    path = "/api/v1/orgs/{org_id:str}/costs"
    tags = ["billing"]

    @get(
        "/endpoints",
        opt=tenant(Permission.USAGE_READ),
        summary="Per endpoint: cost per million tokens renting GPUs vs paying per token",
    )
    async def endpoint_costs(
        self,
        org_id: OrgId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        since: datetime | None = None,
        until: datetime | None = None,
        endpoint: Annotated[str | None, Parameter(max_length=40)] = None,
    ) -> list[EndpointCost]:
        now = clock.now()
        until = _utc(until) or now
        since = _utc(since) or until - timedelta(days=30)
        return await service.endpoint_costs(db, tenant, org_id, since, until, endpoint)


def _utc(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


ROUTES = [CostController]
