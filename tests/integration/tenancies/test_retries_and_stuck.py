"""Driver failures are retried with growing waits, a failure that persists fails the
tenancy (which is still taken down), and work that makes no progress is flagged."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.tenancies.drivers.base import RetryableError, StepResult, TenancyKind
from control_plane.tenancies.models import Tenancy
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.factories import Tenant
from tests.integration.tenancies.conftest import Client, create, tenancies_url, used_milli


def sim_of(reconciler: Reconciler) -> Any:
    return reconciler.drivers.for_tenancy("ca-qc-1", TenancyKind.SLURM)


async def events(client: Client, org: Tenant, auth: dict[str, str], tenancy_id: str) -> list[Any]:
    url = f"{tenancies_url(org)}/{tenancy_id}/events"
    return list((await client.get(url, headers=auth)).json()["items"])


class TestRetries:
    async def test_a_flaky_driver_is_retried_with_growing_waits_then_succeeds(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler, db: AsyncSession, clock: OffsetClock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        sim = sim_of(reconciler)
        real = sim.provision
        failures = {"left": 3}
        waits: list[float] = []

        async def flaky(allocation: Any) -> StepResult:
            if failures["left"]:
                failures["left"] -= 1
                raise RetryableError("BMC busy")
            return await real(allocation)

        monkeypatch.setattr(sim, "provision", flaky)
        tenancy = (await create(client, org, auth)).json()
        for _ in range(4):
            await reconciler.run_once()
            row = await db.get(Tenancy, tenancy["id"], populate_existing=True)
            assert row is not None
            if row.next_attempt_at is not None and row.attempts:
                waits.append((row.next_attempt_at - clock.now()).total_seconds())
                clock.advance(waits[-1] + 0.01)
        await reconciler.converge()

        body = (await client.get(f"{tenancies_url(org)}/{tenancy['id']}", headers=auth)).json()
        assert body["state"] == "active"
        assert len(waits) == 3
        assert waits[0] < waits[1] < waits[2]  # exponential back-off (with jitter)
        errors = [e for e in await events(client, org, auth, tenancy["id"]) if e["kind"] == "error"]
        assert len(errors) == 3
        assert "BMC busy" in errors[0]["detail"]

    async def test_a_persistent_failure_fails_the_tenancy_and_returns_its_gpus(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler, db: AsyncSession, monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        sim = sim_of(reconciler)

        async def broken(allocation: Any) -> StepResult:
            raise RetryableError("installer image corrupt")

        monkeypatch.setattr(sim, "provision", broken)
        tenancy = (await create(client, org, auth, gpus_per_node=4)).json()
        await reconciler.converge(max_passes=200)

        body = (await client.get(f"{tenancies_url(org)}/{tenancy['id']}", headers=auth)).json()
        assert body["state"] == "failed"
        assert "installer image corrupt" in body["failure_reason"]
        assert await used_milli(db) == 0


class TestStuck:
    async def test_work_without_progress_is_flagged_once_and_counted(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler, clock: OffsetClock, monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        sim = sim_of(reconciler)

        async def booting(allocation: Any) -> StepResult:
            return StepResult(done=False, detail="waiting for the node to boot")

        monkeypatch.setattr(sim, "provision", booting)
        tenancy = (await create(client, org, auth)).json()
        await reconciler.run_once()
        limit = reconciler.settings.reconcile_stuck_after_seconds
        clock.advance(limit - 60)
        await reconciler.run_timers()
        url = f"{tenancies_url(org)}/{tenancy['id']}"
        assert (await client.get(url, headers=auth)).json()["stuck_since"] is None

        clock.advance(120)
        await reconciler.run_timers()
        await reconciler.run_timers()

        body = (await client.get(url, headers=auth)).json()
        assert body["state"] == "provisioning"
        assert body["stuck_since"] is not None
        warnings = [e["detail"] for e in await events(client, org, auth, tenancy["id"])
                    if e["kind"] == "warning"]  # fmt: skip
        assert len(warnings) == 1
        assert "provisioning is stuck (still provisioning after 3" in warnings[0]
        assert REGISTRY.get_sample_value("cp_tenancies_stuck") == 1.0
