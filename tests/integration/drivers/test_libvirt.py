"""The ``libvirt`` driver against libvirt's test driver: a fake hypervisor per node, each
described by its own ``test:///<tmp>/<hostname>.xml`` (fresh per test; ``test:///default``
is shared by the whole process). The test driver keeps domains, pools and volumes in
memory, checks domain XML against libvirt's schema and accepts ``<hostdev>`` without an
IOMMU, so real PCI passthrough is not exercised here."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from control_plane.clock import FrozenClock
from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import (
    AllocatedNode,
    Allocation,
    HasConsole,
    PermanentError,
    PowerAction,
    PowerControl,
    Resizable,
    TenancyKind,
)
from control_plane.tenancies.drivers.registry import Drivers
from tests.conftest import need_peer
from tests.fixtures.libvirt_hosts import IMAGE, POOL, libvirt_missing, write_hypervisors
from tests.integration.drivers.contract import DriverContract, ResizableContract, converge

pytestmark = pytest.mark.peer_libvirt

REGION = "ca-qc-1"
HOSTS = ("gpu-001", "gpu-002")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDv2 alice@laptop"
CONSOLE_KEY = "console-signing-key-for-tests"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    need_peer(libvirt_missing())
    write_hypervisors(tmp_path, HOSTS)
    return tmp_path


@pytest.fixture
def settings(state_dir: Path) -> Settings:
    return Settings(
        drivers={f"{REGION}/vm": "libvirt"},
        libvirt_uri_template=f"test://{state_dir}/{{hostname}}.xml",
        libvirt_image_pool=POOL,
        libvirt_disk_pool=POOL,
        libvirt_vcpus_per_gpu=8,
        libvirt_memory_gib_per_gpu=64,
        libvirt_disk_gib=50,
        libvirt_shutdown_grace_seconds=30,
        # the test driver can neither wipe nor upload volumes
        libvirt_wipe_volumes=False,
        libvirt_upload_seed=False,
        libvirt_console_url_template="https://console.{region}.example/vnc.html?path=ws&token={token}",
        libvirt_console_key=CONSOLE_KEY,
        libvirt_health_hosts=list(HOSTS),
        key_dir=state_dir / "keys",
    )


@pytest.fixture
def driver(settings: Settings) -> Any:
    built = Drivers(settings).for_tenancy(REGION, TenancyKind.VM)
    assert built.name == "libvirt"
    built.clock = FrozenClock()
    return built


def _node(host: str, gpus: tuple[int, ...], **extra: Any) -> AllocatedNode:
    bus = {"gpu-001": 0x3B, "gpu-002": 0x5E}[host]
    return AllocatedNode(
        node_id=f"node_{host}",
        hostname=host,
        bmc_endpoint="",
        rack="r1",
        gpu_indices=gpus,
        gpu_pci_addresses=tuple(f"0000:{bus + i:02x}:00.0" for i in gpus),
        **extra,
    )


def _allocation(*nodes: AllocatedNode, tenancy_id: str = "ten_vmcontract") -> Allocation:
    return Allocation(
        tenancy_id=tenancy_id,
        org_id="org_contract",
        region=REGION,
        kind=TenancyKind.VM,
        gpu_model="h100-sxm",
        nodes=nodes,
        image=IMAGE,
        ssh_public_keys=(KEY,),
        labels={"team": "vision"},
    )


@pytest.fixture
def allocation() -> Allocation:
    return _allocation(_node("gpu-001", (0, 1)))


@pytest.fixture
def resized() -> Allocation:
    return _allocation(_node("gpu-001", (0, 1, 2, 3)), _node("gpu-002", (0, 1)))


def _conn(driver: Any, host: str) -> Any:
    return driver.connections.get(
        driver.config.uri_template.format(hostname=host, node_id="", region="")
    )


def _read(driver: Any, allocation: Allocation) -> dict[str, Any]:
    """What the fake hypervisors hold for the tenancy: domains (uuid, id, state) and volumes."""
    found: dict[str, Any] = {}
    for host in HOSTS:
        conn = _conn(driver, host)
        domains = {
            d.name(): (d.UUIDString(), d.ID(), d.state()[0])
            for d in conn.listAllDomains()
            if d.name().startswith(allocation.tenancy_id)
        }
        pool = conn.storagePoolLookupByName(POOL)
        pool.refresh(0)
        volumes = sorted(v for v in pool.listVolumes() if v.startswith(allocation.tenancy_id))
        found[host] = {"domains": domains, "volumes": volumes}
    return found


@pytest.fixture
def side_effects(driver: Any) -> Any:
    async def read(allocation: Allocation) -> dict[str, Any]:
        return _read(driver, allocation)

    return read


class TestLibvirtDriver(DriverContract, ResizableContract):
    async def test_has_the_vm_capabilities(self, driver: Any) -> None:
        assert isinstance(driver, Resizable)
        assert isinstance(driver, PowerControl)
        assert isinstance(driver, HasConsole)
        assert not driver.simulated

    async def test_resize_redefines_the_kept_vm_and_builds_the_new_one(
        self, driver: Any, allocation: Allocation, resized: Allocation
    ) -> None:
        await converge(driver.provision, allocation)
        before = _read(driver, allocation)
        result = await driver.resize(resized, allocation)
        assert result.done, result.detail
        observed = await driver.describe(resized)
        assert observed.ready, observed.detail
        after = _read(driver, resized)
        assert after["gpu-002"]["domains"]
        # the kept node's disk survives the redefinition
        assert after["gpu-001"]["volumes"] == before["gpu-001"]["volumes"]
        assert "0x3e" in _domain_xml(driver, "gpu-001", resized.tenancy_id)


def _domain_xml(driver: Any, host: str, name: str) -> str:
    return str(_conn(driver, host).lookupByName(name).XMLDesc(0))


def _validate_xml(xml: str, tmp_path: Path) -> None:
    path = tmp_path / "domain.xml"
    path.write_text(xml)
    result = subprocess.run(
        ["virt-xml-validate", str(path), "domain"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


class TestDomainOnTheHypervisor:
    async def test_defined_xml_passes_the_schema_with_gpus_size_and_pinning(
        self, driver: Any, tmp_path: Path
    ) -> None:
        node = _node("gpu-001", (0, 1), gpu_numa_nodes=(1, 1), numa_cpus={0: "0-31", 1: "32-63"})
        allocation = _allocation(node)
        await converge(driver.provision, allocation)
        xml = _domain_xml(driver, "gpu-001", allocation.tenancy_id)
        _validate_xml(xml, tmp_path)
        root = ET.fromstring(xml)  # noqa: S314 -- the fake hypervisor's own answer
        addresses = {
            a.get("bus") for a in root.findall("./devices/hostdev[@type='pci']/source/address")
        }
        assert addresses == {"0x3b", "0x3c"}
        assert root.findtext("vcpu") == "16"  # 8 per GPU x 2
        assert int(root.findtext("memory") or 0) == 128 * 1024 * 1024  # KiB: 64 GiB x 2
        pins = root.findall("./cputune/vcpupin")
        assert len(pins) == 16
        assert {p.get("cpuset") for p in pins} == {"32-63"}
        assert root.find("./numatune/memory").get("nodeset") == "1"  # type: ignore[union-attr]
        assert "org_contract" in xml
        assert "ten_vmcontract" in xml

    async def test_seed_volume_and_disk_are_created_from_the_image(
        self, driver: Any, allocation: Allocation
    ) -> None:
        await converge(driver.provision, allocation)
        pool = _conn(driver, "gpu-001").storagePoolLookupByName(POOL)
        disk = pool.storageVolLookupByName("ten_vmcontract.qcow2")
        assert disk.info()[1] == 50 * 1024**3  # the configured size (image is smaller)
        assert pool.storageVolLookupByName("ten_vmcontract-seed.iso").info()[1] > 0

    async def test_power_actions_change_the_domain_state(
        self, driver: Any, allocation: Allocation
    ) -> None:
        import libvirt

        await converge(driver.provision, allocation)
        domain = _conn(driver, "gpu-001").lookupByName(allocation.tenancy_id)
        assert (await converge(lambda a: driver.power(a, PowerAction.STOP), allocation)).done
        assert domain.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
        assert not (await driver.describe(allocation)).ready
        await driver.power(allocation, PowerAction.START)
        assert domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert (await driver.power(allocation, PowerAction.REBOOT)).done
        assert domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert (await driver.describe(allocation)).ready

    async def test_release_shuts_down_and_clean_undefines_and_deletes_volumes(
        self, driver: Any, allocation: Allocation
    ) -> None:
        await converge(driver.provision, allocation)
        await converge(driver.release, allocation)
        held = _read(driver, allocation)["gpu-001"]
        assert [state for _, _, state in held["domains"].values()] == [5]  # shut off
        assert held["volumes"] == ["ten_vmcontract-seed.iso", "ten_vmcontract.qcow2"]
        await converge(driver.clean, allocation)
        assert _read(driver, allocation)["gpu-001"] == {"domains": {}, "volumes": []}
        assert not (await driver.describe(allocation)).exists

    async def test_clean_refuses_when_the_pool_cannot_wipe(
        self, settings: Settings, allocation: Allocation
    ) -> None:
        wiping = Drivers(settings.model_copy(update={"libvirt_wipe_volumes": True}))
        driver: Any = wiping.for_tenancy(REGION, TenancyKind.VM)
        await converge(driver.provision, allocation)
        await converge(driver.release, allocation)
        with pytest.raises(PermanentError, match="cannot wipe volume"):
            await driver.clean(allocation)

    async def test_a_guest_that_ignores_shutdown_is_destroyed_after_the_grace(
        self, driver: Any, allocation: Allocation
    ) -> None:
        await converge(driver.provision, allocation)
        domain = _conn(driver, "gpu-001").lookupByName(allocation.tenancy_id)
        domain.shutdown = lambda: 0  # a guest without ACPI handling
        driver._host = _host_with(driver, domain)
        assert not (await driver.release(allocation)).done
        driver.clock.advance(31)
        assert (await driver.release(allocation)).done
        assert not domain.isActive()


def _host_with(driver: Any, domain: Any) -> Any:
    """The driver's hosts, handing out ``domain`` (patched) for its name."""
    from control_plane.tenancies.drivers.libvirt.host import Host

    class _Pinned(Host):
        def domain(self, name: str) -> Any:
            return domain if name == domain.name() else super().domain(name)

    return lambda plan: _Pinned(driver.connections.get(plan.uri), plan.node.hostname)


class TestValidate:
    async def test_refuses_a_gpu_without_a_pci_address(self, driver: Any) -> None:
        node = replace(_node("gpu-001", (0, 1)), gpu_pci_addresses=("0000:3b:00.0", None))
        with pytest.raises(PermanentError, match="GPU 1 has no PCI address"):
            await driver.validate(_allocation(node))

    async def test_refuses_a_malformed_pci_address(self, driver: Any) -> None:
        node = replace(_node("gpu-001", (0,)), gpu_pci_addresses=("3b:00.0",))
        with pytest.raises(PermanentError, match="not a PCI address"):
            await driver.validate(_allocation(node))

    async def test_refuses_a_gpu_share(self, driver: Any) -> None:
        node = replace(_node("gpu-001", (0,)), gpu_milli=500)
        with pytest.raises(PermanentError, match="whole GPUs"):
            await driver.validate(_allocation(node))

    async def test_refuses_an_unknown_image(self, driver: Any, allocation: Allocation) -> None:
        with pytest.raises(PermanentError, match="no image 'windows-95'"):
            await driver.validate(replace(allocation, image="windows-95"))

    async def test_refuses_another_kind(self, driver: Any, allocation: Allocation) -> None:
        with pytest.raises(PermanentError, match="VM tenancies"):
            await driver.validate(replace(allocation, kind=TenancyKind.BARE_METAL))


class TestConsole:
    async def test_link_carries_a_token_that_verifies_and_expires(
        self, driver: Any, allocation: Allocation
    ) -> None:
        from control_plane.tenancies.drivers.libvirt import console

        await converge(driver.provision, allocation)
        before = _read(driver, allocation)
        access = await driver.console(allocation, ttl_seconds=60)
        assert _read(driver, allocation) == before  # no side effect
        assert access.protocol == "vnc"
        assert access.url.startswith("https://console.ca-qc-1.example/vnc.html")
        token = parse_qs(urlsplit(access.url).query)["token"][0]
        key = CONSOLE_KEY.encode()
        claims = console.verify(token, key, driver.clock.now())
        assert (claims.domain, claims.host) == ("ten_vmcontract", "gpu-001")
        assert claims.expires_at == access.expires_at.replace(microsecond=0)
        with pytest.raises(console.InvalidToken, match="expired"):
            console.verify(token, key, driver.clock.now() + timedelta(seconds=61))
        with pytest.raises(console.InvalidToken, match="signature"):
            console.verify(token, b"another key", driver.clock.now())

    async def test_refuses_a_vm_that_is_not_running(
        self, driver: Any, allocation: Allocation
    ) -> None:
        with pytest.raises(PermanentError, match="not running"):
            await driver.console(allocation, ttl_seconds=60)
