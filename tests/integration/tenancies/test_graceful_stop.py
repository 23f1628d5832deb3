"""A reconciler stopped for a rolling restart finishes the step in hand, gives back the
rest of its claim at once, and cancels only a step that outlasts its grace period."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.tenancies.models import Tenancy
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.factories import Tenant
from tests.integration.tenancies.conftest import Client, create, sim_driver

NewTenancy = Callable[[str], Awaitable[str]]


@pytest.fixture
def new_tenancy(client: Client, org: Tenant, auth: dict[str, str], fleet: list[str]) -> NewTenancy:
    """Ask for a tenancy on the fleet (the reconciler has not touched it yet); its id."""

    async def new(name: str) -> str:
        return str((await create(client, org, auth, name=name)).json()["id"])

    return new


def _twin(reconciler: Reconciler, clock: OffsetClock) -> Reconciler:
    return Reconciler(reconciler.sessionmaker, reconciler.drivers, clock, reconciler.settings,
                      owner="stopping")  # fmt: skip


async def _stuck_in_a_step(
    reconciler: Reconciler, clock: OffsetClock
) -> tuple[Reconciler, asyncio.Task[None]]:
    """A second reconciler running, its first step never ending after the driver answered."""
    stopping = _twin(reconciler, clock)
    in_hand = asyncio.Event()

    async def hang(step: str, tenancy: str) -> None:
        in_hand.set()
        await asyncio.Event().wait()

    stopping.after_driver_call = hang
    running = asyncio.create_task(stopping.run_forever())
    await asyncio.wait_for(in_hand.wait(), 10)
    return stopping, running


async def _leases(db: AsyncSession) -> dict[str, str | None]:
    db.expire_all()
    rows = await db.execute(select(Tenancy.id, Tenancy.lease_token))
    return {tenancy_id: token for tenancy_id, token in rows}


class TestGracefulStop:
    async def test_the_step_in_hand_is_written_back_and_the_rest_is_claimable_at_once(
        self, new_tenancy: NewTenancy, reconciler: Reconciler, clock: OffsetClock, db: AsyncSession
    ) -> None:
        ids = [await new_tenancy(f"drain-{i}") for i in range(3)]
        stopping = _twin(reconciler, clock)
        first_answer = asyncio.Event()
        worked: list[str] = []

        async def after_driver(step: str, tenancy_id: str) -> None:
            worked.append(tenancy_id)
            first_answer.set()
            await asyncio.sleep(0.2)  # the stop arrives while this step is in hand

        stopping.after_driver_call = after_driver
        running = asyncio.create_task(stopping.run_forever())
        await asyncio.wait_for(first_answer.wait(), 10)
        await stopping.stop(running, grace_seconds=10)

        assert running.done()
        assert not running.cancelled()  # it returned by itself
        assert len(worked) == 1  # no step started after the stop
        sim = sim_driver(reconciler)
        assert sim.effects("ca-qc-1", worked[0]) == {"created": 1}
        leases = await _leases(db)
        assert all(leases[tenancy_id] is None for tenancy_id in ids)  # nothing held
        # Another replica takes the two not started now, without waiting for a lease to
        # lapse (the one worked on is next due when its machine has had time to boot).
        claimed = {tenancy_id for tenancy_id, _ in await reconciler.claim(10)}
        assert claimed == set(ids) - {worked[0]}

    async def test_a_step_that_outlasts_the_grace_is_cancelled_and_its_lease_lapses(
        self, new_tenancy: NewTenancy, reconciler: Reconciler, clock: OffsetClock, db: AsyncSession
    ) -> None:
        tenancy_id = await new_tenancy("hangs")
        stopping, running = await _stuck_in_a_step(reconciler, clock)
        await stopping.stop(running, grace_seconds=0.2)

        assert running.cancelled()
        assert (await _leases(db))[tenancy_id] is not None  # held until it lapses
        assert await reconciler.claim(10) == []
        clock.advance(reconciler.settings.reconcile_lease_seconds + 1)
        assert [t for t, _ in await reconciler.claim(10)] == [tenancy_id]

    async def test_a_shutdown_cut_short_leaves_no_reconciler_running(
        self, new_tenancy: NewTenancy, reconciler: Reconciler, clock: OffsetClock
    ) -> None:
        await new_tenancy("cut-short")
        stopping, running = await _stuck_in_a_step(reconciler, clock)
        shutdown = asyncio.create_task(stopping.stop(running, grace_seconds=60))
        await asyncio.sleep(0.05)
        shutdown.cancel()  # the process's own shutdown was cut short

        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(running, 5)
        assert running.cancelled()
