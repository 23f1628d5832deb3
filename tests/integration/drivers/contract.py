"""The contract every tenancy driver keeps, run against each driver's real peer.

A driver's test module subclasses :class:`DriverContract` and provides three fixtures:
``driver`` (the driver under test, wired to its peer), ``allocation`` (a placement on
the peer's capacity that this driver can build) and ``side_effects`` (a callable that
reads, from the peer itself, a dict counting the side effects performed for an
allocation, e.g. power actions seen by the BMC or accounts created in Slurm).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from control_plane.tenancies.drivers.base import (
    Allocation,
    Driver,
    Resizable,
    StepResult,
)

MAX_POLLS = 60

SideEffects = Callable[[Allocation], Awaitable[dict[str, Any]]]


async def converge(
    step: Callable[[Allocation], Awaitable[StepResult]], allocation: Allocation
) -> StepResult:
    """Call a step until it reports done, as the reconciler would (without the back-off)."""
    for _ in range(MAX_POLLS):
        result = await step(allocation)
        if result.done:
            return result
    pytest.fail(f"{step.__name__} not done after {MAX_POLLS} calls")


class DriverContract:
    async def test_health_reports_the_peer_reachable(self, driver: Driver) -> None:
        health = await driver.health()
        assert health.ok, health.detail

    async def test_validate_accepts_the_allocation(
        self, driver: Driver, allocation: Allocation
    ) -> None:
        await driver.validate(allocation)

    async def test_nothing_exists_before_provisioning(
        self, driver: Driver, allocation: Allocation
    ) -> None:
        observed = await driver.describe(allocation)
        assert not observed.exists
        assert not observed.ready

    async def test_provision_brings_the_tenancy_up(
        self, driver: Driver, allocation: Allocation
    ) -> None:
        result = await converge(driver.provision, allocation)
        observed = await driver.describe(allocation)
        assert observed.exists, observed.detail
        assert observed.ready, observed.detail
        assert "password" not in " ".join(result.facts.values()).lower()

    async def test_provision_again_repeats_no_side_effect(
        self, driver: Driver, allocation: Allocation, side_effects: SideEffects
    ) -> None:
        await converge(driver.provision, allocation)
        before = await side_effects(allocation)
        again = await driver.provision(allocation)
        assert again.done
        assert await side_effects(allocation) == before

    async def test_release_and_clean_take_it_down(
        self, driver: Driver, allocation: Allocation
    ) -> None:
        await converge(driver.provision, allocation)
        await converge(driver.release, allocation)
        await converge(driver.clean, allocation)
        observed = await driver.describe(allocation)
        assert not observed.ready

    async def test_release_and_clean_twice_repeat_no_side_effect(
        self, driver: Driver, allocation: Allocation, side_effects: SideEffects
    ) -> None:
        await converge(driver.provision, allocation)
        await converge(driver.release, allocation)
        await converge(driver.clean, allocation)
        before = await side_effects(allocation)
        assert (await driver.release(allocation)).done
        assert (await driver.clean(allocation)).done
        assert await side_effects(allocation) == before

    async def test_release_of_a_tenancy_never_built_is_done(
        self, driver: Driver, allocation: Allocation
    ) -> None:
        assert (await converge(driver.release, allocation)).done
        assert (await converge(driver.clean, allocation)).done

    async def test_provision_after_release_builds_again(
        self, driver: Driver, allocation: Allocation
    ) -> None:
        await converge(driver.provision, allocation)
        await converge(driver.release, allocation)
        await converge(driver.clean, allocation)
        await converge(driver.provision, allocation)
        assert (await driver.describe(allocation)).ready


class ResizableContract:
    """For drivers that can resize in place; subclass with ``resized`` (a bigger
    allocation of the same tenancy) as an extra fixture."""

    async def test_resize_changes_the_gpus(
        self, driver: Driver, allocation: Allocation, resized: Allocation
    ) -> None:
        assert isinstance(driver, Resizable)
        await converge(driver.provision, allocation)
        result = await driver.resize(resized, allocation)
        for _ in range(MAX_POLLS):
            if result.done:
                break
            result = await driver.resize(resized, allocation)
        assert result.done
        observed = await driver.describe(resized)
        assert observed.ready
