"""Budgets API: the billing role sets monthly limits with alerts and hard stops; readers
see spend against them and the alerts sent."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from billing.budgets import service
from billing.budgets.schemas import BudgetRead, BudgetSet
from control_plane.clock import Clock
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.settings import Settings

OrgId = Annotated[str, Parameter(max_length=40)]
BudgetId = Annotated[str, Parameter(max_length=40)]


class BudgetController(Controller):
    path = "/api/v1/orgs/{org_id:str}/budgets"
    tags = ["billing"]

    @get("/", opt=tenant(Permission.BILLING_READ), summary="Budgets with month-to-date spend")
    async def list_budgets(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession
    ) -> list[BudgetRead]:
        return await service.list_budgets(db, tenant, org_id)

    @put(
        "/",
        opt=tenant(Permission.BILLING_WRITE),
        summary="Create or change the budget of (project, currency); a new webhook's signing "
        "secret is returned once",
    )
    async def set_budget(
        self,
        org_id: OrgId,
        data: BudgetSet,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> BudgetRead:
        return await service.set_budget(db, tenant, org_id, data, clock=clock, settings=settings)

    @delete(
        "/{budget_id:str}", opt=tenant(Permission.BILLING_WRITE), status_code=HTTP_204_NO_CONTENT
    )
    async def delete_budget(
        self, org_id: OrgId, budget_id: BudgetId, tenant: TenantScope, db: AsyncSession
    ) -> None:
        await service.delete_budget(db, tenant, org_id, budget_id)


ROUTES = [BudgetController]
