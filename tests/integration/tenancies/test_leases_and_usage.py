"""Leases that end, idle auto-release, resize, and GPU-seconds that accrue exactly once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from litestar import Litestar
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.metering.models import UsageEvent
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.factories import Tenant
from tests.integration.tenancies.conftest import (
    Client,
    create,
    sim_driver,
    tenancies_url,
    used_milli,
)


async def get(client: Client, org: Tenant, auth: dict[str, str], tenancy_id: str) -> dict:
    return (await client.get(f"{tenancies_url(org)}/{tenancy_id}", headers=auth)).json()  # type: ignore[no-any-return]


async def gpu_seconds(db: AsyncSession, tenancy_id: str) -> Decimal:
    rows = await db.execute(select(UsageEvent.value, UsageEvent.dimensions))
    return sum((v for v, d in rows if d["tenancy"] == tenancy_id), Decimal(0))


class TestLeases:
    async def test_a_lease_warns_then_releases_at_its_end(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
        clock: OffsetClock,
        db: AsyncSession,
    ) -> None:
        ends = clock.now() + timedelta(hours=1)
        tenancy = (await create(client, org, auth, ends_at=ends.isoformat())).json()
        await reconciler.converge()
        clock.advance(50 * 60)
        await reconciler.converge()
        events = (await client.get(f"{tenancies_url(org)}/{tenancy['id']}/events",
                                   headers=auth)).json()["items"]  # fmt: skip
        assert any(e["kind"] == "warning" and "lease ends" in e["detail"] for e in events)
        assert (await get(client, org, auth, tenancy["id"]))["state"] == "active"
        clock.advance(11 * 60)
        await reconciler.converge()
        body = await get(client, org, auth, tenancy["id"])
        assert body["state"] == "released"
        assert await used_milli(db) == 0


class TestIdleRelease:
    async def test_an_idle_tenancy_is_released_after_its_idle_minutes(
        self,
        app: Litestar,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
        clock: OffsetClock,
    ) -> None:
        tenancy = (await create(client, org, auth, idle_release_minutes=30)).json()
        await reconciler.converge()
        sim = sim_driver(reconciler)
        sim.set_busy("ca-qc-1", tenancy["id"], True)
        for _ in range(3):  # busy: watched every minute, kept
            clock.advance(61)
            await reconciler.converge()
        assert (await get(client, org, auth, tenancy["id"]))["state"] == "active"
        sim.set_busy("ca-qc-1", tenancy["id"], False)
        for _ in range(32):
            clock.advance(61)
            await reconciler.converge()
        body = await get(client, org, auth, tenancy["id"])
        assert body["state"] == "released"


class TestResize:
    async def test_resize_regrows_the_tenancy_and_the_driver_follows(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
        db: AsyncSession,
    ) -> None:
        tenancy = (await create(client, org, auth, gpus_per_node=2)).json()
        await reconciler.converge()
        url = f"{tenancies_url(org)}/{tenancy['id']}/resize"
        response = await client.post(url, json={"gpus_per_node": 6}, headers=auth)
        assert response.status_code == 200, response.text
        assert response.json()["gpu_count"] == 6
        assert response.json()["pending_resize"] is True
        assert await used_milli(db) == 6000
        await reconciler.converge()
        body = await get(client, org, auth, tenancy["id"])
        assert body["pending_resize"] is False
        assert body["facts"]["gpus"] == "6"

    async def test_bare_metal_cannot_be_resized_in_place(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
    ) -> None:
        tenancy = (await create(client, org, auth, kind="bare_metal", gpus_per_node=8)).json()
        await reconciler.converge()
        url = f"{tenancies_url(org)}/{tenancy['id']}/resize"
        response = await client.post(url, json={"gpus_per_node": 4}, headers=auth)
        assert response.status_code == 409

    async def test_a_resize_that_does_not_fit_changes_nothing(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
        db: AsyncSession,
    ) -> None:
        tenancy = (await create(client, org, auth, gpus_per_node=2)).json()
        await reconciler.converge()
        url = f"{tenancies_url(org)}/{tenancy['id']}/resize"
        response = await client.post(url, json={"gpus_per_node": 9}, headers=auth)
        assert response.status_code == 409
        assert await used_milli(db) == 2000
        assert (await get(client, org, auth, tenancy["id"]))["gpu_count"] == 2


class TestUsage:
    async def test_gpu_seconds_accrue_by_the_hour_and_stop_at_release(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
        clock: OffsetClock,
        db: AsyncSession,
    ) -> None:
        tenancy = (await create(client, org, auth, gpus_per_node=2)).json()
        await reconciler.converge()
        activated = (await get(client, org, auth, tenancy["id"]))["activated_at"]
        clock.advance(2.5 * 3600)
        await reconciler.converge()
        closed_hours = await gpu_seconds(db, tenancy["id"])
        assert closed_hours > 0  # at least one hour has closed since activation
        await client.post(f"{tenancies_url(org)}/{tenancy['id']}/release", headers=auth)
        release_at = clock.now()
        await reconciler.converge()
        total = await gpu_seconds(db, tenancy["id"])
        from datetime import datetime

        active_seconds = (release_at - datetime.fromisoformat(activated)).total_seconds()
        assert abs(total - Decimal(2 * active_seconds)) < Decimal(2 * 2)  # within 2 s of wall time
        clock.advance(3 * 3600)
        await reconciler.converge()
        assert await gpu_seconds(db, tenancy["id"]) == total  # nothing after release

    async def test_accrual_run_twice_counts_once(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
        clock: OffsetClock,
        db: AsyncSession,
    ) -> None:
        tenancy = (await create(client, org, auth, gpus_per_node=1)).json()
        await reconciler.converge()
        clock.advance(3 * 3600)
        await reconciler.run_timers()
        count = (await db.execute(select(func.count()).select_from(UsageEvent))).scalar_one()
        first = await gpu_seconds(db, tenancy["id"])
        await reconciler.run_timers()
        again = (await db.execute(select(func.count()).select_from(UsageEvent))).scalar_one()
        assert again == count
        assert await gpu_seconds(db, tenancy["id"]) == first
