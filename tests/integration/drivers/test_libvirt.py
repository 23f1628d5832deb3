"""The ``libvirt`` driver against libvirt's test driver: a fake hypervisor per node, each
described by its own ``test:///<tmp>/<hostname>.xml`` (fresh per test; ``test:///default``
is shared by the whole process). The test driver keeps domains, pools and volumes in
memory, checks domain XML against libvirt's schema and accepts ``<hostdev>`` without an
IOMMU, so real PCI passthrough is not exercised here."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from control_plane.clock import FrozenClock
from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import (
    AllocatedNode,
    Allocation,
    HasConsole,
    PowerControl,
    Resizable,
    TenancyKind,
)
from control_plane.tenancies.drivers.registry import Drivers
from tests.conftest import need_peer
from tests.integration.drivers.contract import DriverContract, ResizableContract, converge

pytestmark = pytest.mark.peer_libvirt

REGION = "ca-qc-1"
POOL = "tenancies"
IMAGE = "ubuntu-24.04"
HOSTS = ("gpu-001", "gpu-002")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDv2 alice@laptop"
CONSOLE_KEY = "console-signing-key-for-tests"


def _libvirt_missing() -> str | None:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return "libvirt-python is not installed (make peers)"
    if shutil.which("virt-xml-validate") is None:
        return "virt-xml-validate is missing (apt-get install libvirt-clients)"
    return None


def _node_xml() -> str:
    """A fake hypervisor with one active pool holding the base image (the test driver
    clones only within a pool, so images and disks share it here)."""
    return f"""<node>
  <pool type='dir'>
    <name>{POOL}</name>
    <uuid>35bb2ad9-388a-cdfe-461a-b8907f6e53fe</uuid>
    <capacity>10995116277760</capacity><allocation>0</allocation>
    <available>10995116277760</available>
    <target><path>/var/lib/libvirt/images</path></target>
    <volume type='file'>
      <name>{IMAGE}.qcow2</name>
      <capacity>2361393152</capacity><allocation>0</allocation>
      <target><path>/var/lib/libvirt/images/{IMAGE}.qcow2</path><format type='qcow2'/></target>
    </volume>
  </pool>
</node>
"""


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    need_peer(_libvirt_missing())
    for host in HOSTS:
        (tmp_path / f"{host}.xml").write_text(_node_xml())
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
