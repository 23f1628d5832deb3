"""Fixtures of the telemetry suites: a fleet node, an operator, a customer with a tenancy on
the node, and the node agent's credential; helpers that speak the agent's wire format."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.telemetry.tasks import roll_up_all
from tests.fixtures.capacity import make_fleet
from tests.fixtures.factories import Tenant, make_org, make_user, signed_in

Client = AsyncTestClient[Litestar]
BATCHES = "/api/v1/telemetry/batches"


async def must(pending: Awaitable[Any], status: int = 200) -> Any:
    response = await pending
    assert response.status_code == status, response.text
    return response.json()


def hour_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
async def node(db: AsyncSession, clock: OffsetClock) -> str:
    [node_id] = await make_fleet(db, clock, nodes=1, gpus_per_node=4, prefix="tel-h100")
    await db.commit()
    return node_id


@pytest.fixture
async def operator(client: Client, db: AsyncSession) -> dict[str, str]:
    account = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN)
    await db.commit()
    return await signed_in(client, account)


@pytest.fixture
async def customer(db: AsyncSession) -> Tenant:
    tenant = await make_org(db, roles=(TenantRole.OWNER, TenantRole.MEMBER, TenantRole.AUDITOR))
    await db.commit()
    return tenant


@pytest.fixture
async def member(client: Client, customer: Tenant) -> dict[str, str]:
    return await signed_in(client, customer.accounts[TenantRole.MEMBER])


@pytest.fixture
async def agent(client: Client, operator: dict[str, str], node: str) -> dict[str, str]:
    """Headers of the node's agent (a credential an operator issued)."""
    issued = await must(client.post(f"/api/v1/nodes/{node}/agent-credentials", headers=operator),
                        201)  # fmt: skip
    return {"authorization": f"Bearer {issued['credential']}"}


@pytest.fixture
async def gpus(client: Client, operator: dict[str, str], node: str) -> list[dict[str, Any]]:
    """The node's GPUs (id, uuid, index), by index."""
    body = await must(client.get(f"/api/v1/nodes/{node}", headers=operator))
    return sorted(body["gpus"], key=lambda g: g["index"])


def sample(gpu: dict[str, Any], at: datetime, util: int = 50, mem: int = 1024,
           power: float = 300.0, **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "gpu_uuid": gpu["uuid"],
        "index": gpu["index"], "sm_util_pct": util, "mem_util_pct": util // 2,
        "mem_used_mib": mem, "mem_total_mib": 81559, "power_w": power, "temp_c": 50,
        "sm_clock_mhz": 1400, "mem_clock_mhz": 1600, "ecc_corrected": 0, "ecc_uncorrected": 0,
        "processes": [{"pid": 4242, "name": "python", "used_mib": mem}] if mem else [],
        **extra,
    }  # fmt: skip


def minutes(
    gpu: dict[str, Any], start: datetime, utils: Iterable[int], **kw: Any
) -> list[dict[str, Any]]:
    """One sample a minute from ``start``, with these utilizations."""
    return [sample(gpu, start + timedelta(minutes=i), u, **kw) for i, u in enumerate(utils)]


async def roll_up(app: Litestar) -> int:
    """Run the rollup like the background loop (on an engine of the test's event loop)."""
    from control_plane.db.engine import make_engine

    engine = make_engine(app.state.settings.database_url)
    try:
        return await roll_up_all(async_sessionmaker(engine, expire_on_commit=False))
    finally:
        await engine.dispose()
