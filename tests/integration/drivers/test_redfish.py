"""The ``redfish`` driver against real Redfish BMCs: ``sushy-emulator`` with its fake driver,
over HTTPS with basic auth, one fresh emulator per test (tests/fixtures/peers/redfish.py).

Side effects are read from the emulator's own journal of the power and boot requests it
accepted, so a repeated power action fails the contract."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from litestar import Litestar
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.models import AuditEntryRow
from control_plane.clock import FrozenClock, OffsetClock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.inventory.models import Node
from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import (
    AllocatedNode,
    Allocation,
    PermanentError,
    RetryableError,
    TenancyKind,
)
from control_plane.tenancies.drivers.redfish import RedfishDriver
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.wiring import build_reconciler
from tests.conftest import need_peer
from tests.fixtures.capacity import make_fleet
from tests.fixtures.factories import make_org, make_user, signed_in
from tests.fixtures.peers.redfish import RedfishEmulator, redfish_available
from tests.integration.drivers.contract import DriverContract, converge

REGION = "ca-qc-1"
CONVERGE_SECONDS = 180.0  # a bound for the whole path to settle on a busy machine
BUILD = ["boot:Pxe", "power:On", "boot:Hdd"]  # one-time PXE, power on, override cleared
WIPE = ["boot:Pxe", "power:On", "boot:Hdd", "power:ForceOff"]


class Secrets:
    """The provider's secret store as the reconciler wires it: reveals ``bmc/<host>``."""

    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values
        self.revealed: list[tuple[str, str]] = []

    async def __call__(self, name: str, reason: str) -> bytes:
        self.revealed.append((name, reason))
        if name not in self.values:
            raise LookupError(name)
        return self.values[name]


def _node(bmc: RedfishEmulator | None, hostname: str, **changes: Any) -> AllocatedNode:
    endpoint = bmc.system_url(hostname) if bmc else f"https://bmc-{hostname}/redfish/v1/Systems/1"
    node = AllocatedNode(
        node_id=f"node_{hostname}",
        hostname=hostname,
        bmc_endpoint=endpoint,
        rack="r1",
        gpu_indices=tuple(range(8)),
        whole_node=True,
    )
    return replace(node, **changes)


def _allocation(*nodes: AllocatedNode, tenancy_id: str = "ten_redfish") -> Allocation:
    return Allocation(
        tenancy_id=tenancy_id,
        org_id="org_contract",
        region=REGION,
        kind=TenancyKind.BARE_METAL,
        gpu_model="h100-sxm",
        nodes=nodes,
        image="ubuntu-24.04",
        ssh_public_keys=("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample tenant",),
    )


def _reset(bmc: RedfishEmulator, hostname: str, reset_type: str) -> None:
    """A power action that does not come from the driver."""
    system = bmc.node(hostname).system_id
    with bmc.client() as client:
        reset = f"/redfish/v1/Systems/{system}/Actions/ComputerSystem.Reset"
        client.post(reset, json={"ResetType": reset_type}).raise_for_status()


def _settings(bmc: RedfishEmulator, state_dir: Path, **changes: Any) -> Settings:
    options: dict[str, Any] = {
        "drivers": {f"{REGION}/bare_metal": "redfish"},
        "redfish_ca_bundle": bmc.ca_bundle,
        "redfish_state_dir": state_dir,
        "redfish_health_urls": [bmc.service_root],
    }
    return Settings(**(options | changes))


@pytest.fixture
def bmc() -> Iterator[RedfishEmulator]:
    need_peer(redfish_available())
    with RedfishEmulator() as emulator:
        yield emulator


@pytest.fixture
def bmc_secrets(bmc: RedfishEmulator) -> Secrets:
    return Secrets({f"bmc/gpu-00{n}": bmc.secret() for n in range(1, 5)})


@pytest.fixture
def driver(bmc: RedfishEmulator, bmc_secrets: Secrets, tmp_path: Path) -> RedfishDriver:
    """Built the way the control plane builds it: CP_DRIVERS names redfish for the region."""
    drivers = Drivers(settings=_settings(bmc, tmp_path / "redfish"), reveal_secret=bmc_secrets)
    built = drivers.for_tenancy(REGION, TenancyKind.BARE_METAL)
    assert isinstance(built, RedfishDriver)
    return built


@pytest.fixture
def allocation(bmc: RedfishEmulator) -> Allocation:
    return _allocation(_node(bmc, "gpu-001"), _node(bmc, "gpu-002"))


@pytest.fixture
def side_effects(bmc: RedfishEmulator) -> Any:
    async def read(allocation: Allocation) -> dict[str, list[str]]:
        return {node.hostname: bmc.actions(node.hostname) for node in allocation.nodes}

    return read


@pytest.mark.peer_redfish
class TestRedfishDriver(DriverContract):
    async def test_is_a_real_driver(self, driver: RedfishDriver) -> None:
        assert driver.name == "redfish"
        assert not driver.simulated
        assert driver.kind is TenancyKind.BARE_METAL

    async def test_provision_boots_each_node_once_from_pxe(
        self, driver: RedfishDriver, allocation: Allocation, bmc: RedfishEmulator
    ) -> None:
        first = await driver.provision(allocation)
        assert not first.done
        assert "powering on into the installer" in first.detail
        result = await converge(driver.provision, allocation)
        assert result.facts == {
            "access": "ssh",
            "hosts": "gpu-001,gpu-002",
            "nodes": "2",
            "gpus": "16",
            "image": "ubuntu-24.04",
        }
        for host in ("gpu-001", "gpu-002"):
            assert bmc.actions(host) == BUILD
            system = bmc.system(host)
            assert system["PowerState"] == "On"
            assert system["Boot"]["BootSourceOverrideTarget"] == "Hdd"  # reboots keep the OS
        assert bmc.actions("gpu-003") == []

    async def test_a_node_left_on_is_powered_off_before_its_pxe_boot(
        self, driver: RedfishDriver, bmc: RedfishEmulator
    ) -> None:
        allocation = _allocation(_node(bmc, "gpu-004"))
        assert bmc.system("gpu-004")["PowerState"] == "On"
        assert not (await driver.describe(allocation)).exists  # on, but not this tenancy's
        await converge(driver.provision, allocation)
        assert bmc.actions("gpu-004") == ["power:ForceOff", *BUILD]

    async def test_release_powers_off_and_clean_wipes_through_pxe(
        self, driver: RedfishDriver, allocation: Allocation, bmc: RedfishEmulator
    ) -> None:
        await converge(driver.provision, allocation)
        await converge(driver.release, allocation)
        assert bmc.actions("gpu-001") == [*BUILD, "power:ForceOff"]
        assert bmc.system("gpu-001")["PowerState"] == "Off"
        await converge(driver.clean, allocation)
        assert bmc.actions("gpu-001") == [*BUILD, "power:ForceOff", *WIPE]
        system = bmc.system("gpu-001")
        assert system["PowerState"] == "Off"
        assert system["Boot"]["BootSourceOverrideTarget"] == "Hdd"

    async def test_a_node_powered_on_after_release_is_powered_off_before_its_wipe(
        self, driver: RedfishDriver, bmc: RedfishEmulator
    ) -> None:
        allocation = _allocation(_node(bmc, "gpu-001"))
        await converge(driver.provision, allocation)
        await converge(driver.release, allocation)
        _reset(bmc, "gpu-001", "On")  # someone at the console
        await converge(driver.clean, allocation)
        console, wipe = ["power:On"], ["power:ForceOff", *WIPE]
        assert bmc.actions("gpu-001") == [*BUILD, "power:ForceOff", *console, *wipe]
        assert bmc.system("gpu-001")["PowerState"] == "Off"

    async def test_clean_before_release_is_refused(
        self, driver: RedfishDriver, allocation: Allocation
    ) -> None:
        await converge(driver.provision, allocation)
        with pytest.raises(PermanentError, match="before it is released"):
            await driver.clean(allocation)

    async def test_describe_sees_a_node_powered_off_behind_its_back(
        self, driver: RedfishDriver, allocation: Allocation, bmc: RedfishEmulator
    ) -> None:
        await converge(driver.provision, allocation)
        _reset(bmc, "gpu-002", "ForceOff")  # someone at the console
        observed = await driver.describe(allocation)
        assert observed.exists
        assert not observed.ready
        assert observed.detail == "powered off: gpu-002"

    async def test_a_restarted_control_plane_resumes_without_repeating_actions(
        self, bmc: RedfishEmulator, bmc_secrets: Secrets, allocation: Allocation, tmp_path: Path
    ) -> None:
        settings = _settings(bmc, tmp_path / "shared-journal")
        before_crash = RedfishDriver(settings=settings, reveal_secret=bmc_secrets)
        assert not (await before_crash.provision(allocation)).done
        after_restart = RedfishDriver(settings=settings, reveal_secret=bmc_secrets)
        await converge(after_restart.provision, allocation)
        assert bmc.actions("gpu-001") == BUILD

    async def test_bmc_credentials_are_revealed_with_a_reason_and_never_logged(
        self,
        driver: RedfishDriver,
        allocation: Allocation,
        bmc: RedfishEmulator,
        bmc_secrets: Secrets,
    ) -> None:
        with structlog.testing.capture_logs() as logs:
            result = await converge(driver.provision, allocation)
        assert {name for name, _ in bmc_secrets.revealed} == {"bmc/gpu-001", "bmc/gpu-002"}
        assert all(
            reason == "redfish provision of ten_redfish" for _, reason in bmc_secrets.revealed
        )
        assert {"event": "redfish power", "node": "gpu-001", "action": "On"} in [
            {k: v for k, v in entry.items() if k != "log_level"} for entry in logs
        ]
        assert bmc.password not in repr(logs) + repr(result)
        revealed = len(bmc_secrets.revealed)
        assert (await driver.provision(allocation)).done
        assert len(bmc_secrets.revealed) == revealed  # a finished step asks for no secret

    async def test_wrong_credentials_fail_the_tenancy_without_showing_them(
        self,
        driver: RedfishDriver,
        allocation: Allocation,
        bmc: RedfishEmulator,
        bmc_secrets: Secrets,
    ) -> None:
        bmc_secrets.values["bmc/gpu-001"] = b'{"username": "cp-bmc", "password": "not-it"}'
        with pytest.raises(PermanentError, match=r"refused the credentials in bmc/gpu-001") as err:
            await driver.provision(allocation)
        assert "not-it" not in str(err.value)
        assert bmc.actions("gpu-001") == []

    async def test_missing_or_malformed_credentials_fail_the_tenancy(
        self, driver: RedfishDriver, allocation: Allocation, bmc_secrets: Secrets
    ) -> None:
        del bmc_secrets.values["bmc/gpu-002"]
        with pytest.raises(PermanentError, match=r"no BMC credentials \(secret bmc/gpu-002\)"):
            await driver.provision(allocation)
        bmc_secrets.values["bmc/gpu-002"] = b"hunter2"
        with pytest.raises(PermanentError, match="not JSON with username") as err:
            await driver.provision(allocation)
        assert "hunter2" not in str(err.value)

    async def test_an_unknown_system_fails_the_tenancy(
        self, driver: RedfishDriver, bmc: RedfishEmulator
    ) -> None:
        node = _node(bmc, "gpu-001", bmc_endpoint=f"{bmc.base_url}/redfish/v1/Systems/nope")
        with pytest.raises(PermanentError, match="no Redfish system at /redfish/v1/Systems/nope"):
            await driver.provision(_allocation(node))

    async def test_an_untrusted_bmc_certificate_is_refused(
        self, bmc: RedfishEmulator, bmc_secrets: Secrets, allocation: Allocation, tmp_path: Path
    ) -> None:
        settings = _settings(bmc, tmp_path / "redfish", redfish_ca_bundle=None)
        driver = RedfishDriver(settings=settings, reveal_secret=bmc_secrets)
        with pytest.raises(PermanentError, match="TLS certificate is not trusted"):
            await driver.provision(allocation)
        assert not (await driver.health()).ok
        assert bmc.journal() == []

    async def test_an_unreachable_bmc_is_retried_later(
        self, driver: RedfishDriver, allocation: Allocation, bmc: RedfishEmulator
    ) -> None:
        assert not (await driver.provision(allocation)).done
        bmc.stop()
        with pytest.raises(RetryableError, match="BMC unreachable"):
            await driver.provision(allocation)
        health = await driver.health()
        assert not health.ok
        assert "unreachable" in health.detail


@pytest.fixture
async def slow_bmc() -> AsyncIterator[RedfishEmulator]:
    need_peer(redfish_available())
    with RedfishEmulator(power_delay=3600) as emulator:
        yield emulator


@pytest.mark.peer_redfish
class TestSlowBmc:
    async def test_a_power_action_not_applied_yet_is_sent_again_only_after_the_wait(
        self, slow_bmc: RedfishEmulator, tmp_path: Path
    ) -> None:
        clock = FrozenClock()
        bmc_secrets = Secrets({"bmc/gpu-001": slow_bmc.secret()})
        settings = _settings(slow_bmc, tmp_path / "redfish", redfish_power_wait_seconds=120)
        driver = RedfishDriver(settings=settings, reveal_secret=bmc_secrets, clock=clock)
        allocation = _allocation(_node(slow_bmc, "gpu-001"))
        for _ in range(3):
            assert not (await driver.provision(allocation)).done
            clock.advance(30)
        assert slow_bmc.actions("gpu-001") == ["boot:Pxe", "power:On"]
        clock.advance(60)  # 150 s since the power-on was sent, and still off
        assert not (await driver.provision(allocation)).done
        assert slow_bmc.actions("gpu-001") == ["boot:Pxe", "power:On", "power:On"]


class TestValidation:
    """What the driver refuses before any side effect (no BMC needed)."""

    @pytest.fixture
    def driver(self, tmp_path: Path) -> RedfishDriver:
        async def no_secrets(name: str, reason: str) -> bytes:
            raise AssertionError("validation must not reveal secrets")

        return RedfishDriver(
            settings=Settings(redfish_state_dir=tmp_path), reveal_secret=no_secrets
        )

    async def test_accepts_whole_nodes_behind_https_bmcs(self, driver: RedfishDriver) -> None:
        await driver.validate(_allocation(_node(None, "gpu-001"), _node(None, "gpu-002")))

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"whole_node": False}, "whole nodes only"),
            ({"gpu_milli": 500}, "whole nodes only"),
            ({"bmc_endpoint": "https://bmc-1/redfish/v1/Managers/1"}, "Redfish system URL"),
            ({"bmc_endpoint": "ipmi://bmc-1"}, "Redfish system URL"),
            ({"bmc_endpoint": "http://bmc-1/redfish/v1/Systems/1"}, "plain-HTTP BMC refused"),
        ],
    )
    async def test_refuses(
        self, driver: RedfishDriver, changes: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(PermanentError, match=message):
            await driver.validate(_allocation(_node(None, "gpu-001", **changes)))

    async def test_refuses_other_kinds_odd_images_and_no_nodes(self, driver: RedfishDriver) -> None:
        node = _node(None, "gpu-001")
        with pytest.raises(PermanentError, match="builds bare metal"):
            await driver.validate(replace(_allocation(node), kind=TenancyKind.VM))
        with pytest.raises(PermanentError, match="not a valid image name"):
            await driver.validate(replace(_allocation(node), image="../../etc/passwd"))
        with pytest.raises(PermanentError, match="at least one node"):
            await driver.validate(_allocation())

    async def test_plain_http_is_allowed_when_the_operator_says_so(self, tmp_path: Path) -> None:
        async def no_secrets(name: str, reason: str) -> bytes:
            raise AssertionError("validation must not reveal secrets")

        settings = Settings(redfish_state_dir=tmp_path, redfish_allow_http=True)
        driver = RedfishDriver(settings=settings, reveal_secret=no_secrets)
        node = _node(None, "gpu-001", bmc_endpoint="http://bmc-1/redfish/v1/Systems/1")
        await driver.validate(_allocation(node))

    async def test_health_with_no_bmc_known_yet_says_so(self, driver: RedfishDriver) -> None:
        health = await driver.health()
        assert health.ok
        assert "no BMC to probe yet" in health.detail


# --- the whole path: API, reconciler, this driver, a Redfish BMC -------------------------


@pytest.fixture
def settings(database_url: str, tmp_path: Path, bmc: RedfishEmulator) -> Settings:
    """The app's settings with bare-metal tenancies of REGION going to the emulated BMCs."""
    return _settings(
        bmc, tmp_path / "redfish", database_url=database_url, key_dir=tmp_path / "keys",
        sim_dir=tmp_path / "sim", reconciler_enabled=False, environment="test",
        cookie_secure=False, login_rate_per_minute=1000,
    )  # fmt: skip


@pytest.mark.peer_redfish
class TestThroughTheApi:
    async def test_an_operator_stores_bmc_credentials_and_a_member_rents_the_node(
        self, app: Litestar, client: Any, db: AsyncSession, clock: OffsetClock,
        bmc: RedfishEmulator,
    ) -> None:  # fmt: skip
        (node_id,) = await make_fleet(db, clock, region=REGION, nodes=1, prefix="api")
        await db.execute(
            update(Node).where(Node.id == node_id)
            .values(hostname="gpu-003", bmc_endpoint=bmc.system_url("gpu-003"))
        )  # fmt: skip
        org = await make_org(db, roles=(TenantRole.MEMBER,))
        admin = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN)
        await db.commit()
        ops = await signed_in(client, admin)
        stored = await client.post("/api/v1/provider/secrets", headers=ops, json={
            "name": "bmc/gpu-003", "kind": "bmc_credentials", "value": bmc.secret().decode(),
        })  # fmt: skip
        assert stored.status_code == 201, stored.text
        assert "password" not in stored.text

        member = await signed_in(client, org.accounts[TenantRole.MEMBER])
        url = f"/api/v1/orgs/{org.org_id}/tenancies"
        created = await client.post(url, headers=member, json={
            "name": "metal", "kind": "bare_metal", "region": REGION, "gpu_model": "h100",
            "gpus_per_node": 8, "image": "ubuntu-24.04",
            "ssh_public_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKey me@laptop"],
        })  # fmt: skip
        assert created.status_code == 201, created.text
        tenancy_url = f"{url}/{created.json()['id']}"
        engine = make_engine(app.state.settings.database_url)

        async def pause(seconds: float) -> None:
            await asyncio.sleep(seconds)  # real time: the peer moves on its own clock

        # Built as the app builds it, on this test's event loop: drivers reveal secrets
        # through a session of this engine.
        reconciler = build_reconciler(make_sessionmaker(engine), clock, app.state.settings)
        reconciler.pause = pause
        try:
            with contextlib.suppress(TimeoutError):  # the state check below says what is wrong
                await asyncio.wait_for(reconciler.converge(max_passes=500), CONVERGE_SECONDS)
            body = (await client.get(tenancy_url, headers=member)).json()
            events = (await client.get(f"{tenancy_url}/events", headers=member)).json()["items"]
            assert body["state"] == "active", [(e["kind"], e["detail"]) for e in events]
            assert (body["state"], body["driver"], body["simulated"]) == (
                "active", "redfish", False,
            )  # fmt: skip
            assert body["facts"]["hosts"] == "gpu-003"
            assert bmc.actions("gpu-003") == BUILD

            assert (await client.post(f"{tenancy_url}/release", headers=member)).status_code == 200
            await asyncio.wait_for(reconciler.converge(max_passes=500), CONVERGE_SECONDS)
        finally:
            await engine.dispose()
        body = (await client.get(tenancy_url, headers=member)).json()
        assert body["state"] == "released"
        assert bmc.actions("gpu-003") == [*BUILD, "power:ForceOff", *WIPE]
        uses = await db.execute(
            select(AuditEntryRow.actor_id, AuditEntryRow.decision_ref)
            .where(AuditEntryRow.action == "keys.use")
        )  # fmt: skip
        reasons = [(actor, reason.split(" of ")[0]) for actor, reason in uses]
        # every BMC conversation revealed the credentials with its reason in the ledger
        assert ("tenancies.drivers", "redfish provision") in reasons
        assert ("tenancies.drivers", "redfish clean") in reasons
