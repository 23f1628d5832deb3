"""Price API: operators publish price book versions per region and set contract terms
(overrides, commitments, credits) per organization; anyone signed in reads a region's
prices; tenants keep their billing profile (where they are taxed)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from billing.prices import service
from billing.prices.schemas import (
    CommitmentCreate,
    CommitmentRead,
    CreditCreate,
    CreditRead,
    OverrideCreate,
    OverrideRead,
    PriceBookCreate,
    PriceBookRead,
    ProfileRead,
    ProfileSet,
)
from control_plane.clock import Clock
from control_plane.errors import NotFound
from control_plane.identity import organizations
from control_plane.identity.authz import ProviderScope, TenantScope, authenticated, provider, tenant
from control_plane.identity.roles import Permission, ProviderPermission

RegionCode = Annotated[str, Parameter(max_length=32)]
OrgId = Annotated[str, Parameter(max_length=64)]
WRITE = provider(ProviderPermission.PRICES_WRITE)


class PriceBookController(Controller):
    path = "/api/v1/regions/{code:str}/price-books"
    tags = ["billing"]

    @get("/", opt=authenticated(), summary="Every version of the region's price book")
    async def list_books(self, code: RegionCode, db: AsyncSession) -> list[PriceBookRead]:
        return await service.list_books(db, code)

    @post(
        "/",
        opt=WRITE,
        status_code=HTTP_201_CREATED,
        summary="Publish a new version (takes effect at effective_from; never edited)",
    )
    async def create_book(
        self,
        code: RegionCode,
        data: PriceBookCreate,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
    ) -> PriceBookRead:
        actor = operator.principal.user_id or operator.principal.id
        return await service.create_book(db, code, data, actor=actor, now=clock.now())


async def _org(db: AsyncSession, ref: str) -> str:
    org = await organizations.find_org(db, ref)
    if org is None:
        raise NotFound(detail=f"No organization {ref!r}.")
    return org.id


class ContractController(Controller):
    """An organization's contract terms, set by operators."""

    path = "/api/v1/billing/orgs/{org_ref:str}"
    tags = ["billing"]

    @get("/overrides", opt=WRITE)
    async def list_overrides(
        self, org_ref: OrgId, operator: ProviderScope, db: AsyncSession
    ) -> list[OverrideRead]:
        return await service.list_overrides(db, await _org(db, org_ref))

    @post(
        "/overrides",
        opt=WRITE,
        status_code=HTTP_201_CREATED,
        summary="A contract price or discount for matching usage",
    )
    async def add_override(
        self,
        org_ref: OrgId,
        data: OverrideCreate,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
    ) -> OverrideRead:
        return await service.add_override(db, await _org(db, org_ref), data, clock.now())

    @get("/commitments", opt=WRITE)
    async def list_commitments(
        self, org_ref: OrgId, operator: ProviderScope, db: AsyncSession
    ) -> list[CommitmentRead]:
        return await service.list_commitments(db, await _org(db, org_ref))

    @post(
        "/commitments",
        opt=WRITE,
        status_code=HTTP_201_CREATED,
        summary="Reserved capacity, billed whether used or not",
    )
    async def add_commitment(
        self,
        org_ref: OrgId,
        data: CommitmentCreate,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
    ) -> CommitmentRead:
        return await service.add_commitment(db, await _org(db, org_ref), data, clock.now())

    @post(
        "/credits",
        opt=WRITE,
        status_code=HTTP_201_CREATED,
        summary="Grant a credit or prepaid amount, drawn before charging",
    )
    async def grant_credit(
        self,
        org_ref: OrgId,
        data: CreditCreate,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
    ) -> CreditRead:
        return await service.grant_credit(db, await _org(db, org_ref), data, clock.now())


class TenantBillingController(Controller):
    path = "/api/v1/orgs/{org_id:str}/billing"
    tags = ["billing"]

    @get("/profile", opt=tenant(Permission.BILLING_READ))
    async def get_profile(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession
    ) -> ProfileRead | None:
        return await service.get_profile(db, tenant, org_id)

    @put(
        "/profile",
        opt=tenant(Permission.BILLING_WRITE),
        summary="Legal name, country, subdivision and tax id (decide the tax rule)",
    )
    async def set_profile(
        self,
        org_id: OrgId,
        data: ProfileSet,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
    ) -> ProfileRead:
        return await service.set_profile(db, tenant, org_id, data, clock.now())

    @get("/credits", opt=tenant(Permission.BILLING_READ), summary="Credits and what is left")
    async def credits(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession
    ) -> list[CreditRead]:
        return await service.list_credits(db, tenant, org_id)


ROUTES = [PriceBookController, ContractController, TenantBillingController]
