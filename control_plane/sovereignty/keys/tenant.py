"""What tenants do with their keys and secrets (API and portal), checked against a TenantScope.

Values only go in: there is no tenant-facing way to read one back. The platform reads
them with :func:`control_plane.sovereignty.keys.service.reveal`, which ledgers each use.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import NotFound
from control_plane.http.pagination import Page, PageRequest, make_page
from control_plane.identity.authz import TenantScope
from control_plane.identity.roles import Permission
from control_plane.settings import Settings
from control_plane.sovereignty.keys import repository, service
from control_plane.sovereignty.keys.kek import KeyEncryptionKeys
from control_plane.sovereignty.keys.schemas import (
    DataKeyRead,
    SecretCreate,
    SecretRead,
    SecretReplace,
)


async def list_secrets(
    db: AsyncSession, scope: TenantScope, org_id: str, page: PageRequest
) -> Page[SecretRead]:
    scope.require(org_id, Permission.SECRETS_READ)
    rows = await repository.tenant_secrets(db, scope, org_id, page)
    result = make_page(rows, page, key=lambda row: row.id)
    return Page(
        items=[service.secret_read(r) for r in result.items], next_cursor=result.next_cursor
    )


async def get_secret(
    db: AsyncSession, scope: TenantScope, org_id: str, secret_id: str
) -> SecretRead:
    scope.require(org_id, Permission.SECRETS_READ)
    row = await repository.tenant_secret(db, scope, org_id, secret_id)
    if row is None:
        raise NotFound(detail="No such secret.")
    return service.secret_read(row)


async def create_secret(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    data: SecretCreate,
    *,
    clock: Clock,
    settings: Settings,
    keks: KeyEncryptionKeys | None = None,
) -> SecretRead:
    scope.require(org_id, Permission.SECRETS_WRITE)
    return await service.create(
        db,
        org_id=org_id,
        name=data.name,
        kind=data.kind,
        value=service.decode_value(data.value, data.value_encoding),
        actor=service.Actor.of(scope.principal),
        clock=clock,
        settings=settings,
        description=data.description,
        region=data.region,
        keks=keks,
    )


async def replace_secret(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    secret_id: str,
    data: SecretReplace,
    *,
    clock: Clock,
    settings: Settings,
    keks: KeyEncryptionKeys | None = None,
) -> SecretRead:
    scope.require(org_id, Permission.SECRETS_WRITE)
    if await repository.tenant_secret(db, scope, org_id, secret_id) is None:
        raise NotFound(detail="No such secret.")
    return await service.replace(
        db,
        org_id=org_id,
        secret_id=secret_id,
        value=service.decode_value(data.value, data.value_encoding),
        clock=clock,
        settings=settings,
        description=data.description if isinstance(data.description, str) else None,
        keks=keks,
    )


async def delete_secret(db: AsyncSession, scope: TenantScope, org_id: str, secret_id: str) -> None:
    scope.require(org_id, Permission.SECRETS_WRITE)
    if await repository.tenant_secret(db, scope, org_id, secret_id) is None:
        raise NotFound(detail="No such secret.")
    await service.delete(db, org_id=org_id, secret_id=secret_id)


async def list_data_keys(
    db: AsyncSession, scope: TenantScope, org_id: str, page: PageRequest
) -> Page[DataKeyRead]:
    scope.require(org_id, Permission.SECRETS_READ)
    rows = await repository.tenant_data_keys(db, scope, org_id, page)
    result = make_page(rows, page, key=lambda row: row.id)
    return Page(
        items=[service.data_key_read(r) for r in result.items], next_cursor=result.next_cursor
    )


async def rotate_data_key(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    *,
    clock: Clock,
    settings: Settings,
    keks: KeyEncryptionKeys | None = None,
) -> DataKeyRead:
    scope.require(org_id, Permission.SECRETS_WRITE)
    return await service.rotate_data_key(
        db, org_id=org_id, clock=clock, settings=settings, keks=keks
    )
