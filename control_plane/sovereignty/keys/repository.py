"""Queries of the keys domain. Tenant-facing ones take a TenantScope and filter with it.

Tenant filters use ``keyring`` (an organization's id, never NULL) rather than the nullable
``org_id``: the provider keyring can never match an organization a scope permits.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.http.pagination import PageRequest
from control_plane.identity.authz import TenantScope
from control_plane.sovereignty.keys.models import DataKey, Secret


async def secret_by_id(db: AsyncSession, keyring: str, secret_id: str) -> Secret | None:
    query = select(Secret).where(Secret.keyring == keyring, Secret.id == secret_id)
    return (await db.execute(query)).scalar_one_or_none()


async def secret_by_name(db: AsyncSession, keyring: str, region: str, name: str) -> Secret | None:
    query = select(Secret).where(
        Secret.keyring == keyring, Secret.region == region, Secret.name == name
    )
    return (await db.execute(query)).scalar_one_or_none()


async def secrets_page(db: AsyncSession, keyring: str, page: PageRequest) -> Sequence[Secret]:
    query = select(Secret).where(Secret.keyring == keyring)
    if page.after:
        query = query.where(Secret.id > page.after)
    return (await db.execute(query.order_by(Secret.id).limit(page.limit + 1))).scalars().all()


async def tenant_secrets(
    db: AsyncSession, scope: TenantScope, org_id: str, page: PageRequest
) -> Sequence[Secret]:
    scope.require(org_id)
    query = select(Secret).where(scope.org_filter(Secret.keyring), Secret.keyring == org_id)
    if page.after:
        query = query.where(Secret.id > page.after)
    return (await db.execute(query.order_by(Secret.id).limit(page.limit + 1))).scalars().all()


async def tenant_secret(
    db: AsyncSession, scope: TenantScope, org_id: str, secret_id: str
) -> Secret | None:
    scope.require(org_id)
    query = select(Secret).where(
        scope.org_filter(Secret.keyring), Secret.keyring == org_id, Secret.id == secret_id
    )
    return (await db.execute(query)).scalar_one_or_none()


async def tenant_data_keys(
    db: AsyncSession, scope: TenantScope, org_id: str, page: PageRequest
) -> Sequence[DataKey]:
    """Newest first: the page cursor is the id, and ids grow with each version."""
    scope.require(org_id)
    query = select(DataKey).where(scope.org_filter(DataKey.keyring), DataKey.keyring == org_id)
    if page.after:
        query = query.where(DataKey.id < page.after)
    rows = await db.execute(query.order_by(DataKey.id.desc()).limit(page.limit + 1))
    return rows.scalars().all()


async def live_data_keys(db: AsyncSession, org_id: str) -> Sequence[DataKey]:
    """An organization's data keys that still hold key material, by region and version."""
    query = select(DataKey).where(DataKey.keyring == org_id, DataKey.wrapped_key.is_not(None))
    rows = await db.execute(query.order_by(DataKey.region, DataKey.version))
    return rows.scalars().all()
