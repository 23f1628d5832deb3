"""No GPU is ever given out twice, and a crash between any two steps loses nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.tenancies.models import GpuAllocation, GpuClaim
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.factories import Tenant, make_org, signed_in
from tests.integration.tenancies.conftest import (
    Client,
    create,
    live_allocations,
    sim_driver,
    tenancies_url,
    used_milli,
)


class TestConcurrentCreates:
    async def test_64_creates_for_16_gpus_give_exactly_16_and_never_a_gpu_twice(
        self, client: Client, db: AsyncSession, fleet: list[str]
    ) -> None:
        orgs = [await make_org(db, roles=(TenantRole.MEMBER,)) for _ in range(8)]
        await db.commit()
        sessions = [(org, await signed_in(client, org.accounts[TenantRole.MEMBER])) for org in orgs]

        async def one(i: int) -> Any:
            org, auth = sessions[i % len(sessions)]
            return await create(client, org, auth, name=f"race-{i}", gpus_per_node=1)

        answers = await asyncio.gather(*(one(i) for i in range(64)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(201) == 16, [
            a.text for a in answers if a.status_code not in (201, 409)
        ]
        assert statuses.count(409) == 48
        refused = [a.json() for a in answers if a.status_code == 409]
        assert all(p["type"].endswith("/insufficient-capacity") for p in refused)
        claims = (await db.execute(select(GpuClaim.used_milli))).scalars().all()
        assert sorted(claims) == [1000] * 16
        per_gpu = await db.execute(
            select(GpuAllocation.gpu_id, func.count())
            .where(GpuAllocation.released_at.is_(None))
            .group_by(GpuAllocation.gpu_id)
        )
        assert all(count == 1 for _, count in per_gpu)
        assert await live_allocations(db) == 16


class Crash(Exception):
    """Stands for the process dying: nothing after it in the step runs."""


async def run_with_crash(reconciler: Reconciler, clock: OffsetClock, crash_on: int) -> int:
    """Converge, dying right after the ``crash_on``-th driver answer (before it is written
    back); then 'restart' (a fresh reconciler once the dead one's lease has lapsed) and
    converge. Returns how many driver calls the first run made."""
    calls = 0

    async def hook(step: str, tenancy_id: str) -> None:
        nonlocal calls
        calls += 1
        if calls == crash_on:
            raise Crash(step)

    dying = Reconciler(reconciler.sessionmaker, reconciler.drivers, clock, reconciler.settings,
                       owner="dying", after_driver_call=hook)  # fmt: skip
    with pytest.raises(Crash):
        await dying.converge()
    clock.advance(reconciler.settings.reconcile_lease_seconds + 1)
    await reconciler.converge()
    return calls


class TestCrashes:
    @pytest.mark.parametrize("crash_on", [1, 2])
    async def test_a_crash_while_provisioning_converges_with_each_effect_once(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
        clock: OffsetClock,
        db: AsyncSession,
        crash_on: int,
    ) -> None:
        tenancy = (await create(client, org, auth, gpus_per_node=4)).json()
        await run_with_crash(reconciler, clock, crash_on)
        body = (await client.get(f"{tenancies_url(org)}/{tenancy['id']}", headers=auth)).json()
        assert body["state"] == "active"
        sim = sim_driver(reconciler)
        effects = sim.effects("ca-qc-1", tenancy["id"])
        assert effects == {"created": 1, "booted": 1}

    @pytest.mark.parametrize("crash_on", [1, 2])
    async def test_a_crash_while_releasing_converges_and_leaks_no_gpu(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
        clock: OffsetClock,
        db: AsyncSession,
        crash_on: int,
    ) -> None:
        tenancy = (await create(client, org, auth, gpus_per_node=4)).json()
        await reconciler.converge()
        await client.post(f"{tenancies_url(org)}/{tenancy['id']}/release", headers=auth)
        await run_with_crash(reconciler, clock, crash_on)
        body = (await client.get(f"{tenancies_url(org)}/{tenancy['id']}", headers=auth)).json()
        assert body["state"] == "released"
        sim = sim_driver(reconciler)
        effects = sim.effects("ca-qc-1", tenancy["id"])
        assert effects == {"created": 1, "booted": 1, "released": 1, "wiped": 1}
        assert await used_milli(db) == 0
        assert await live_allocations(db) == 0

    async def test_a_lease_held_by_a_live_worker_is_not_taken(
        self,
        app: Litestar,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
    ) -> None:
        await create(client, org, auth)
        first = await reconciler.claim(10)
        second = await reconciler.claim(10)
        assert len(first) == 1
        assert second == []
