"""The ``sim`` driver keeps the driver contract (its peer is its own state directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from control_plane.tenancies.drivers.base import AllocatedNode, Allocation, TenancyKind
from control_plane.tenancies.drivers.sim import SimDriver
from tests.integration.drivers.contract import DriverContract, ResizableContract


def _allocation(gpus: int) -> Allocation:
    return Allocation(
        tenancy_id="ten_contract",
        org_id="org_contract",
        region="ca-qc-1",
        kind=TenancyKind.BARE_METAL,
        gpu_model="h100-sxm",
        nodes=(
            AllocatedNode(
                node_id="node_1", hostname="gpu-001", bmc_endpoint="sim://gpu-001",
                rack="r1", gpu_indices=tuple(range(gpus)),
            ),
        ),
    )  # fmt: skip


@pytest.fixture
def driver(tmp_path: Path) -> SimDriver:
    return SimDriver(kind=TenancyKind.BARE_METAL, state_dir=tmp_path / "sim", boot_polls=3)


@pytest.fixture
def allocation() -> Allocation:
    return _allocation(2)


@pytest.fixture
def resized() -> Allocation:
    return _allocation(4)


@pytest.fixture
def side_effects(driver: SimDriver) -> Any:
    async def read(allocation: Allocation) -> dict[str, int]:
        return driver.effects(allocation.region, allocation.tenancy_id)

    return read


class TestSimDriver(DriverContract, ResizableContract):
    async def test_is_labelled_simulated(self, driver: SimDriver) -> None:
        assert driver.simulated
        assert driver.name == "sim"

    async def test_machine_takes_the_configured_polls_to_boot(
        self, driver: SimDriver, allocation: Allocation
    ) -> None:
        results = [await driver.provision(allocation) for _ in range(3)]
        assert [r.done for r in results] == [False, False, True]
        assert driver.effects("ca-qc-1", "ten_contract") == {"created": 1, "booted": 1}
