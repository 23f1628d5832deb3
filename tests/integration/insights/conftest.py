"""Fixtures of the insights suites: an H100 node and an L40S node with their agents, the
region's price book, a customer, and the app's reconciler on the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.settings import Settings
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.capacity import make_fleet
from tests.fixtures.factories import Tenant, make_org, make_user, signed_in
from tests.fixtures.reconciler import app_reconciler
from tests.integration.telemetry.conftest import BATCHES, Client, must, roll_up

__all__ = ["BATCHES", "Client", "must", "roll_up"]

RATES = [
    {"usage_type": "gpu_seconds", "gpu_model": "h100", "unit_price": "4.00"},
    {"usage_type": "gpu_seconds", "gpu_model": "l40s", "unit_price": "1.20"},
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Sessions that outlive the days these tests let pass."""
    return settings.model_copy(update={"session_ttl_seconds": 30 * 86400})


@pytest.fixture
async def nodes(db: AsyncSession, clock: OffsetClock) -> dict[str, str]:
    [h100] = await make_fleet(db, clock, nodes=1, gpus_per_node=4, prefix="ins-h100")
    [l40s] = await make_fleet(db, clock, nodes=1, gpus_per_node=4, model="l40s",
                              prefix="ins-l40s")  # fmt: skip
    await db.commit()
    return {"h100": h100, "l40s": l40s}


@pytest.fixture
async def operator(client: Client, db: AsyncSession) -> dict[str, str]:
    account = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN)
    await db.commit()
    return await signed_in(client, account)


@pytest.fixture
async def book(client: Client, operator: dict[str, str], clock: OffsetClock, nodes: Any) -> Any:
    body = {"effective_from": (clock.now() - timedelta(days=40)).isoformat(),
            "timezone": "America/Toronto", "rates": RATES}  # fmt: skip
    return await must(client.post("/api/v1/regions/ca-qc-1/price-books", json=body,
                                  headers=operator), 201)  # fmt: skip


@pytest.fixture
async def customer(db: AsyncSession) -> Tenant:
    tenant = await make_org(db, roles=(TenantRole.OWNER, TenantRole.MEMBER, TenantRole.AUDITOR))
    await db.commit()
    return tenant


@pytest.fixture
async def member(client: Client, customer: Tenant) -> dict[str, str]:
    return await signed_in(client, customer.accounts[TenantRole.MEMBER])


@pytest.fixture
async def auditor(client: Client, customer: Tenant) -> dict[str, str]:
    return await signed_in(client, customer.accounts[TenantRole.AUDITOR])


@pytest.fixture
async def reconciler(app: Litestar, clock: OffsetClock) -> AsyncIterator[Reconciler]:
    async with app_reconciler(app, clock) as reconciler:
        yield reconciler


class Agent:
    """A node's agent as the control plane sees it: a credential and the node's GPUs."""

    def __init__(self, client: Client, headers: dict[str, str], gpus: list[dict[str, Any]]):
        self.client, self.headers, self.gpus = client, headers, gpus
        self.sent = 0

    @classmethod
    async def enrol(cls, client: Client, operator: dict[str, str], node: str) -> Agent:
        issued = await must(client.post(f"/api/v1/nodes/{node}/agent-credentials",
                                        headers=operator), 201)  # fmt: skip
        gpus = (await must(client.get(f"/api/v1/nodes/{node}", headers=operator)))["gpus"]
        return cls(client, {"authorization": f"Bearer {issued['credential']}"},
                   sorted(gpus, key=lambda g: g["index"]))  # fmt: skip

    async def report(
        self, index: int, start: datetime, end: datetime, util: int, mem_mib: int,
        *, procs: int = 1, step: timedelta = timedelta(minutes=10),
    ) -> None:  # fmt: skip
        """Samples of GPU ``index`` every ``step`` over ``[start, end)``, sent in batches."""
        gpu, at, samples = self.gpus[index], start, []
        while at < end:
            samples.append({
                "at": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "gpu_uuid": gpu["uuid"], "index": gpu["index"], "sm_util_pct": util,
                "mem_util_pct": util // 2, "mem_used_mib": mem_mib, "mem_total_mib": 81559,
                "power_w": 80.0 + 6.0 * util, "temp_c": 45, "sm_clock_mhz": 1400,
                "mem_clock_mhz": 1600,
                "processes": [{"pid": 100 + p, "name": "python", "used_mib": mem_mib}
                              for p in range(procs)],
            })  # fmt: skip
            at += step
        for i in range(0, len(samples), 2000):
            self.sent += 1
            body = {"batch_id": f"t-{index}-{self.sent}", "samples": samples[i : i + 2000]}
            await must(self.client.post(BATCHES, json=body, headers=self.headers))
