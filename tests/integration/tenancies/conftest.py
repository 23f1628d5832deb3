"""Shared fixtures of the tenancy suites: an organization, a fleet, the app's reconciler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.tenancies.drivers.base import TenancyKind
from control_plane.tenancies.drivers.sim import SimDriver
from control_plane.tenancies.models import GpuAllocation, GpuClaim
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.capacity import make_fleet
from tests.fixtures.factories import Tenant, login, make_org
from tests.fixtures.reconciler import app_reconciler

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def org(db: AsyncSession) -> Tenant:
    tenant = await make_org(db, roles=(TenantRole.OWNER, TenantRole.MEMBER, TenantRole.AUDITOR))
    await db.commit()
    return tenant


@pytest.fixture
async def auth(client: Client, org: Tenant) -> dict[str, str]:
    return await login(client, org.accounts[TenantRole.MEMBER])


@pytest.fixture
async def fleet(db: AsyncSession, clock: OffsetClock) -> list[str]:
    """Two 8x H100 NVLink nodes in ca-qc-1."""
    nodes = await make_fleet(db, clock, nodes=2, gpus_per_node=8, prefix="qc-h100")
    await db.commit()
    return nodes


@pytest.fixture
async def reconciler(app: Litestar, clock: OffsetClock) -> AsyncIterator[Reconciler]:
    async with app_reconciler(app, clock) as reconciler:
        yield reconciler


def sim_driver(reconciler: Reconciler, region: str = "ca-qc-1") -> SimDriver:
    """The simulated data centre behind Slurm tenancies of ``region`` (to read its effects)."""
    driver = reconciler.drivers.for_tenancy(region, TenancyKind.SLURM)
    assert isinstance(driver, SimDriver)
    return driver


def tenancies_url(org: Tenant) -> str:
    return f"/api/v1/orgs/{org.org_id}/tenancies"


async def create(client: Client, org: Tenant, auth: dict[str, str], **body: Any) -> Any:
    payload = {"name": "train-1", "kind": "slurm", "region": "ca-qc-1", "gpu_model": "h100",
               "gpus_per_node": 2, **body}  # fmt: skip
    return await client.post(tenancies_url(org), json=payload, headers=auth)


async def used_milli(db: AsyncSession) -> int:
    """GPU thousandths claimed in the whole fleet."""
    total = await db.execute(select(func.coalesce(func.sum(GpuClaim.used_milli), 0)))
    return int(total.scalar_one())


async def live_allocations(db: AsyncSession) -> int:
    count = await db.execute(
        select(func.count()).select_from(GpuAllocation).where(GpuAllocation.released_at.is_(None))
    )
    return int(count.scalar_one())
