"""Keys API: tenants' secrets (write-only values) and data keys; the provider's KEK rotation."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.http.pagination import Page, PageRequest
from control_plane.identity.authz import ProviderScope, TenantScope, provider, tenant
from control_plane.identity.roles import Permission, ProviderPermission
from control_plane.settings import Settings
from control_plane.sovereignty.keys import provider as provider_keys
from control_plane.sovereignty.keys import service
from control_plane.sovereignty.keys import tenant as tenant_keys
from control_plane.sovereignty.keys.rotation import rotate_kek
from control_plane.sovereignty.keys.schemas import (
    DataKeyRead,
    KekRotationRead,
    SecretCreate,
    SecretRead,
    SecretReplace,
)

OrgId = Annotated[str, Parameter(max_length=40)]
SecretId = Annotated[str, Parameter(max_length=40)]
RegionCode = Annotated[str, Parameter(max_length=32)]


class SecretController(Controller):
    path = "/api/v1/orgs/{org_id:str}/secrets"
    tags = ["keys"]

    @get("/", opt=tenant(Permission.SECRETS_READ), summary="Secrets (metadata only)")
    async def list_secrets(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession, page: PageRequest
    ) -> Page[SecretRead]:
        return await tenant_keys.list_secrets(db, tenant, org_id, page)

    @post(
        "/",
        opt=tenant(Permission.SECRETS_WRITE),
        status_code=HTTP_201_CREATED,
        summary="Store a secret (the value is encrypted and never returned)",
    )
    async def create_secret(
        self,
        org_id: OrgId,
        data: SecretCreate,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> SecretRead:
        return await tenant_keys.create_secret(
            db, tenant, org_id, data, clock=clock, settings=settings
        )

    @get("/{secret_id:str}", opt=tenant(Permission.SECRETS_READ), summary="A secret's metadata")
    async def get_secret(
        self, org_id: OrgId, secret_id: SecretId, tenant: TenantScope, db: AsyncSession
    ) -> SecretRead:
        return await tenant_keys.get_secret(db, tenant, org_id, secret_id)

    @put(
        "/{secret_id:str}",
        opt=tenant(Permission.SECRETS_WRITE),
        summary="Replace a secret's value",
    )
    async def replace_secret(
        self,
        org_id: OrgId,
        secret_id: SecretId,
        data: SecretReplace,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> SecretRead:
        return await tenant_keys.replace_secret(
            db, tenant, org_id, secret_id, data, clock=clock, settings=settings
        )

    @delete("/{secret_id:str}", opt=tenant(Permission.SECRETS_WRITE), summary="Delete a secret")
    async def delete_secret(
        self, org_id: OrgId, secret_id: SecretId, tenant: TenantScope, db: AsyncSession
    ) -> None:
        await tenant_keys.delete_secret(db, tenant, org_id, secret_id)


class DataKeyController(Controller):
    path = "/api/v1/orgs/{org_id:str}/keys"
    tags = ["keys"]

    @get("/", opt=tenant(Permission.SECRETS_READ), summary="Data key versions, newest first")
    async def list_data_keys(
        self, org_id: OrgId, tenant: TenantScope, db: AsyncSession, page: PageRequest
    ) -> Page[DataKeyRead]:
        return await tenant_keys.list_data_keys(db, tenant, org_id, page)

    @post(
        "/rotate",
        opt=tenant(Permission.SECRETS_WRITE),
        status_code=HTTP_200_OK,
        summary="New data key version for new writes (older versions still decrypt)",
    )
    async def rotate_data_key(
        self,
        org_id: OrgId,
        tenant: TenantScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> DataKeyRead:
        return await tenant_keys.rotate_data_key(db, tenant, org_id, clock=clock, settings=settings)


class ProviderSecretController(Controller):
    """The provider's own secrets: BMC credentials (``bmc/<hostname>``), cluster tokens."""

    path = "/api/v1/provider/secrets"
    tags = ["keys"]

    @get(
        "/", opt=provider(ProviderPermission.SECRETS_MANAGE), summary="Provider secrets (metadata)"
    )
    async def list_secrets(self, db: AsyncSession, page: PageRequest) -> Page[SecretRead]:
        return await provider_keys.list_secrets(db, page)

    @post(
        "/",
        opt=provider(ProviderPermission.SECRETS_MANAGE),
        status_code=HTTP_201_CREATED,
        summary="Store a provider secret (encrypted; never returned)",
    )
    async def create_secret(
        self,
        data: SecretCreate,
        operator: ProviderScope,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> SecretRead:
        return await provider_keys.create_secret(db, operator, data, clock=clock, settings=settings)

    @put(
        "/{secret_id:str}",
        opt=provider(ProviderPermission.SECRETS_MANAGE),
        summary="Replace a provider secret's value",
    )
    async def replace_secret(
        self,
        secret_id: SecretId,
        data: SecretReplace,
        db: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> SecretRead:
        return await provider_keys.replace_secret(
            db, secret_id, data, clock=clock, settings=settings
        )

    @delete(
        "/{secret_id:str}",
        opt=provider(ProviderPermission.SECRETS_MANAGE),
        summary="Delete a provider secret",
    )
    async def delete_secret(self, secret_id: SecretId, db: AsyncSession) -> None:
        await provider_keys.delete_secret(db, secret_id)


@post(
    "/api/v1/regions/{code:str}/kek/rotate",
    opt=provider(ProviderPermission.KEYS_MANAGE),
    status_code=HTTP_200_OK,
    tags=["keys"],
    summary="Rotate the region's key-encryption key and re-wrap every data key under it",
)
async def rotate_region_kek(
    request: Request[Any, Any, Any],
    code: RegionCode,
    operator: ProviderScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> KekRotationRead:
    """Re-wrapping commits batch by batch in sessions of its own; ``db`` (unused here until
    the handler returns) carries only the request's ledger entry."""
    region = service.served_region(settings, code, field="path.code")
    return await rotate_kek(
        request.app.state.sessionmaker,
        service.keys_for(settings),
        region,
        clock,
        actor_kind="operator",
        actor_id=operator.principal.user_id,
    )


ROUTES: list[ControllerRouterHandler] = [
    SecretController,
    DataKeyController,
    ProviderSecretController,
    rotate_region_kek,
]
