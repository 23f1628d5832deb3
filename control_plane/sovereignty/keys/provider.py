"""The provider's own secrets (BMC credentials, Slurm tokens ...), which drivers reveal
through :func:`control_plane.sovereignty.keys.service.reveal_by_name`: operator-admins
store, replace and delete them; nobody reads a value back through the API."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.http.pagination import Page, PageRequest, make_page
from control_plane.identity.authz import ProviderScope
from control_plane.settings import Settings
from control_plane.sovereignty.keys import repository, service
from control_plane.sovereignty.keys.models import PROVIDER_KEYRING
from control_plane.sovereignty.keys.schemas import SecretCreate, SecretRead, SecretReplace


async def list_secrets(db: AsyncSession, page: PageRequest) -> Page[SecretRead]:
    rows = await repository.secrets_page(db, PROVIDER_KEYRING, page)
    result = make_page(rows, page, key=lambda row: row.id)
    return Page(
        items=[service.secret_read(r) for r in result.items], next_cursor=result.next_cursor
    )


async def create_secret(
    db: AsyncSession,
    operator: ProviderScope,
    data: SecretCreate,
    *,
    clock: Clock,
    settings: Settings,
) -> SecretRead:
    return await service.create(
        db, org_id=None, name=data.name, kind=data.kind,
        value=service.decode_value(data.value, data.value_encoding),
        actor=service.Actor.of(operator.principal), clock=clock, settings=settings,
        description=data.description, region=data.region,
    )  # fmt: skip


async def replace_secret(
    db: AsyncSession, secret_id: str, data: SecretReplace, *, clock: Clock, settings: Settings
) -> SecretRead:
    return await service.replace(
        db, org_id=None, secret_id=secret_id,
        value=service.decode_value(data.value, data.value_encoding), clock=clock,
        settings=settings,
        description=data.description if isinstance(data.description, str) else None,
    )  # fmt: skip


async def delete_secret(db: AsyncSession, secret_id: str) -> None:
    await service.delete(db, org_id=None, secret_id=secret_id)
