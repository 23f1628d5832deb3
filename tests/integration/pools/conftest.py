"""Fixtures of the pool suites: the tenancy fixtures, a second organization, an operator,
and a pool of the whole fleet lent by day to one organization and by night to another."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.seed.demo import seed_catalog
from tests.fixtures.factories import Tenant, make_org, make_user, signed_in
from tests.integration.tenancies.conftest import (
    Client,
    fleet,
    org,
    reconciler,
)

# The tenancy fixtures, re-exported so pytest finds them here too.
__all__ = ["Client", "fleet", "org", "reconciler"]

POOLS = "/api/v1/regions/ca-qc-1/pools"
DRAIN_MINUTES = 30


@pytest.fixture(autouse=True)
async def catalog(db: AsyncSession, clock: OffsetClock) -> None:
    """The demo regions and GPU models (pools live in a region)."""
    await seed_catalog(db, clock)
    await db.commit()


@pytest.fixture
async def other(db: AsyncSession) -> Tenant:
    tenant = await make_org(db, roles=(TenantRole.OWNER, TenantRole.MEMBER))
    await db.commit()
    return tenant


@pytest.fixture
async def operator(client: Client, db: AsyncSession) -> dict[str, str]:
    account = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN)
    await db.commit()
    return await signed_in(client, account)


@pytest.fixture
async def auth(client: Client, org: Tenant) -> dict[str, str]:
    """A member of ``org``, its session named explicitly (several people act per test)."""
    return await signed_in(client, org.accounts[TenantRole.MEMBER])


@pytest.fixture
async def other_auth(client: Client, other: Tenant) -> dict[str, str]:
    return await signed_in(client, other.accounts[TenantRole.MEMBER])


@dataclass
class DayAndNight:
    """A pool (UTC) open to ``org`` for three hours from an hour ago, to ``other`` the rest
    of the day (across midnight)."""

    pool_id: str
    day_end: datetime
    night_end: datetime


def _minute(at: datetime) -> int:
    return at.hour * 60 + at.minute


def _hhmm(minutes: int) -> str:
    minutes %= 24 * 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@pytest.fixture
async def day_and_night(
    client: Client,
    operator: dict[str, str],
    org: Tenant,
    other: Tenant,
    fleet: list[str],
    clock: OffsetClock,
) -> DayAndNight:
    now = clock.now().astimezone(UTC)
    start = _minute(now) - 60
    end = start + 180
    pool = await must(client.post(POOLS, json={"name": "gpu-shared", "timezone": "UTC",
                      "drain_minutes": DRAIN_MINUTES}, headers=operator))  # fmt: skip
    await must(client.put(f"{POOLS}/{pool['id']}/nodes", json={"node_ids": fleet},
                          headers=operator))  # fmt: skip
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    for grantee, opens, closes in ((org, start, end), (other, end, start)):
        await must(client.post(f"{POOLS}/{pool['id']}/windows", headers=operator, json={
            "org_id": grantee.org_id, "days": every_day, "start": _hhmm(opens),
            "end": _hhmm(closes)}))  # fmt: skip
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day_end = midnight + timedelta(minutes=end)
    if day_end <= now:  # the window started yesterday (UTC)
        day_end += timedelta(days=1)
    return DayAndNight(pool["id"], day_end, day_end + timedelta(hours=21))


async def must(call: Any) -> Any:
    response = await call
    assert response.status_code in (200, 201), response.text
    return response.json()
