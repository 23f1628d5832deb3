"""A VM tenancy from request to release through the API, the reconciler and the real
``libvirt`` driver (libvirt's test driver, one fake hypervisor per node): placed on the
fleet's GPUs by PCI address, reachable (power, console), accruing GPU-seconds, released and
cleaned, its GPUs back in the pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.metering.models import UsageEvent
from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import TenancyKind
from control_plane.tenancies.reconciler import Reconciler
from tests.conftest import need_peer
from tests.fixtures.capacity import make_fleet
from tests.fixtures.factories import Tenant
from tests.fixtures.libvirt_hosts import IMAGE, POOL, libvirt_missing, write_hypervisors
from tests.fixtures.reconciler import app_reconciler
from tests.integration.tenancies.conftest import Client, create, tenancies_url, used_milli

pytestmark = pytest.mark.peer_libvirt

HOSTS = ("qc-vm-00", "qc-vm-01")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDv2 alice@laptop"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    need_peer(libvirt_missing())
    uri_template = write_hypervisors(tmp_path / "hypervisors", HOSTS)
    return Settings(
        database_url=database_url, key_dir=tmp_path / "keys", sim_dir=tmp_path / "sim",
        model_store_root=tmp_path / "models", triton_dir=tmp_path / "triton",
        reconciler_enabled=False, autoscale_enabled=False, environment="test",
        cookie_secure=False, login_rate_per_minute=1000,
        drivers={"ca-qc-1/vm": "libvirt"},
        libvirt_uri_template=uri_template,
        libvirt_image_pool=POOL, libvirt_disk_pool=POOL, libvirt_disk_gib=50,
        libvirt_vcpus_per_gpu=8, libvirt_memory_gib_per_gpu=64,
        libvirt_shutdown_grace_seconds=0,
        libvirt_wipe_volumes=False, libvirt_upload_seed=False,  # the test driver cannot
        libvirt_console_url_template="https://console.{region}.example/vnc.html?token={token}",
        libvirt_console_key="console-key-for-tests", libvirt_health_hosts=list(HOSTS),
    )  # fmt: skip


@pytest.fixture
async def vm_fleet(db: AsyncSession, clock: OffsetClock) -> list[str]:
    nodes = await make_fleet(db, clock, nodes=2, gpus_per_node=8, prefix="qc-vm")
    await db.commit()
    return nodes


@pytest.fixture
async def reconciler(app: Litestar, clock: OffsetClock) -> AsyncIterator[Reconciler]:
    async with app_reconciler(app, clock) as reconciler:
        yield reconciler


def _domains(reconciler: Reconciler) -> dict[str, Any]:
    """Every domain on the fake hypervisors, by name, with its state (read from libvirt,
    through the driver's own connections: a test:///file hypervisor lives in its connection)."""
    driver: Any = reconciler.drivers.for_tenancy("ca-qc-1", TenancyKind.VM)
    found: dict[str, Any] = {}
    for host in HOSTS:
        connection = driver.connections.get(_uri(reconciler, host))
        for domain in connection.listAllDomains():
            found[domain.name()] = (host, domain.state()[0], domain.XMLDesc())
    return found


def _uri(reconciler: Reconciler, host: str) -> str:
    template = reconciler.settings.libvirt_uri_template
    return template.replace("{hostname}", host)


class TestVmEndToEnd:
    async def test_request_to_release_on_libvirt(
        self, client: Client, org: Tenant, auth: dict[str, str], vm_fleet: list[str],
        reconciler: Reconciler, clock: OffsetClock, db: AsyncSession,
    ) -> None:  # fmt: skip
        import libvirt

        response = await create(client, org, auth, name="vm-1", kind="vm", gpus_per_node=2,
                                image=IMAGE, ssh_public_keys=[KEY])  # fmt: skip
        assert response.status_code == 201, response.text
        tenancy = response.json()
        assert tenancy["driver"] == "libvirt"
        assert tenancy["simulated"] is False
        await reconciler.converge()
        url = f"{tenancies_url(org)}/{tenancy['id']}"
        body = (await client.get(url, headers=auth)).json()
        assert body["state"] == "active", body

        domains = _domains(reconciler)
        assert len(domains) == 1
        host, state, xml = next(iter(domains.values()))
        assert host == body["allocations"][0]["hostname"]
        assert state == libvirt.VIR_DOMAIN_RUNNING
        for index in body["allocations"][0]["gpu_indices"]:  # the fleet's recorded addresses
            bus = 0x18 + 0x10 * index
            assert f"bus='0x{bus:02x}'" in xml or f'bus="0x{bus:02x}"' in xml
        assert ">16</vcpu>" in xml  # 8 vCPUs per GPU, 2 GPUs

        stop = await client.post(f"{url}/power", json={"action": "stop"}, headers=auth)
        assert stop.status_code == 200, stop.text
        assert next(iter(_domains(reconciler).values()))[1] != libvirt.VIR_DOMAIN_RUNNING
        assert (await client.get(url, headers=auth)).json()["facts"]["power"] == "off"
        start = await client.post(f"{url}/power", json={"action": "start"}, headers=auth)
        assert start.status_code == 200, start.text
        assert next(iter(_domains(reconciler).values()))[1] == libvirt.VIR_DOMAIN_RUNNING
        console = await client.post(f"{url}/console", headers=auth)
        assert console.status_code == 200, console.text
        assert console.json()["url"].startswith("https://console.ca-qc-1.example/vnc.html?token=")

        clock.advance(2 * 3600)
        await reconciler.converge()
        release = await client.post(f"{url}/release", headers=auth)
        assert release.status_code == 200, release.text
        await reconciler.converge()
        assert (await client.get(url, headers=auth)).json()["state"] == "released"
        assert _domains(reconciler) == {}  # destroyed and undefined
        assert await used_milli(db) == 0
        await db.rollback()
        rows = await db.execute(select(UsageEvent.value, UsageEvent.dimensions))
        seconds = sum((v for v, d in rows if d["tenancy"] == tenancy["id"]), Decimal(0))
        assert seconds >= Decimal(2 * 2 * 3600) - 10  # two GPUs for at least two hours
