"""Fixtures of the billing suites: the demo catalog, an operator, a customer organization
(with its people signed in) and a second one, a price book, and usage put straight into
the metering store the way tenancies and the gateway put it there."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.metering.service import NewUsage, record_usage
from control_plane.seed.demo import seed_catalog
from tests.fixtures.factories import Tenant, make_org, make_user, signed_in

Client = AsyncTestClient[Litestar]
BOOKS = "/api/v1/regions/ca-qc-1/price-books"
RUNS = "/api/v1/billing/invoices/runs"
HOUR = timedelta(hours=1)

# CAD per GPU-hour / per million tokens, as an operator would publish them.
QC_RATES = [
    {
        "usage_type": "gpu_seconds",
        "gpu_model": "h100",
        "unit_price": "4.00",
        "night_unit_price": "2.00",
        "minimum_seconds": 60,
    },
    {"usage_type": "gpu_seconds", "gpu_model": "l40s", "unit_price": "1.20"},
    {"usage_type": "tokens_in", "unit_price": "0.20"},
    {"usage_type": "tokens_out", "unit_price": "0.60"},
]


def hour_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture(autouse=True)
async def catalog(db: AsyncSession, clock: OffsetClock) -> None:
    await seed_catalog(db, clock)
    await db.commit()


@pytest.fixture
async def customer(db: AsyncSession) -> Tenant:
    tenant = await make_org(
        db, roles=(TenantRole.OWNER, TenantRole.BILLING, TenantRole.MEMBER, TenantRole.AUDITOR)
    )
    await db.commit()
    return tenant


@pytest.fixture
async def other(db: AsyncSession) -> Tenant:
    tenant = await make_org(db, roles=(TenantRole.OWNER,))
    await db.commit()
    return tenant


@pytest.fixture
async def operator(client: Client, db: AsyncSession) -> dict[str, str]:
    account = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN)
    await db.commit()
    return await signed_in(client, account)


@pytest.fixture
async def owner(client: Client, customer: Tenant) -> dict[str, str]:
    return await signed_in(client, customer.accounts[TenantRole.OWNER])


@pytest.fixture
async def biller(client: Client, customer: Tenant) -> dict[str, str]:
    return await signed_in(client, customer.accounts[TenantRole.BILLING])


@pytest.fixture
async def book(client: Client, operator: dict[str, str], clock: OffsetClock) -> dict[str, Any]:
    """ca-qc-1's first book, effective since well before any usage of the tests."""
    body = {
        "effective_from": (clock.now() - timedelta(days=40)).isoformat(),
        "timezone": "America/Toronto",
        "night_start_hour": 0,
        "night_end_hour": 6,
        "rates": QC_RATES,
    }
    return await must(client.post(BOOKS, json=body, headers=operator), 201)


async def must(pending: Awaitable[Any], status: int = 200) -> Any:
    """The JSON of a response that must have ``status``."""
    response = await pending
    assert response.status_code == status, response.text
    return response.json()


def gpu_usage(
    org: Tenant,
    event_id: str,
    at: datetime,
    seconds: int,
    *,
    model: str = "h100",
    tenancy: str = "ten_a",
    source: str = "tenancies",
    project: str | None = None,
) -> NewUsage:
    return NewUsage(
        source=source,
        event_id=event_id,
        org_id=org.org_id,
        project_id=project or org.project_id,
        type="gpu_seconds",
        value=Decimal(seconds),
        window_start=at,
        window_end=at + timedelta(seconds=seconds),
        dimensions={
            "region": "ca-qc-1",
            "gpu_model": model,
            "tenancy_kind": "bare_metal",
            "tenancy": tenancy,
        },
    )


def token_usage(
    org: Tenant, event_id: str, at: datetime, kind: str, tokens: int, endpoint: str = "ep_chat"
) -> NewUsage:
    return NewUsage(
        source="gateway",
        event_id=event_id,
        org_id=org.org_id,
        project_id=org.project_id,
        type=kind,
        value=Decimal(tokens),
        window_start=at,
        window_end=at + timedelta(minutes=1),
        dimensions={
            "region": "ca-qc-1",
            "endpoint": endpoint,
            "model": "chat-v1",
            "api_key": "key_1",
            "requests": "3",
        },
    )


async def store(db: AsyncSession, events: Sequence[NewUsage], at: datetime) -> int:
    duplicates = await record_usage(db, events, at)
    await db.commit()
    return duplicates


def day_hour(clock: OffsetClock) -> datetime:
    """An hour that is daytime in Toronto (16:00 UTC = 11:00 or 12:00 local), yesterday."""
    return hour_start(clock.now() - timedelta(days=1)).replace(hour=16)
