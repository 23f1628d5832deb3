"""Node enrolment from CSV and YAML files: all rows or none, errors that name row and field."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import yaml
from litestar import Litestar, post
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.app import create_app
from control_plane.clock import Clock, OffsetClock
from control_plane.identity.authz import ProviderScope, provider
from control_plane.identity.roles import ProviderPermission, ProviderRole
from control_plane.inventory import service
from control_plane.inventory.models import Gpu, GpuModel, Node, NodeEvent, Region, Site
from control_plane.inventory.schemas import NodeImport, NodeImportResult
from control_plane.settings import Settings
from tests.fixtures.factories import Account, login, make_user

Client = AsyncTestClient[Litestar]
IMPORT = "/api/v1/nodes/import"
COLUMNS = (
    "hostname,region,site,rack,bmc_endpoint,gpu_model,gpu_count,"
    "firmware_version,driver_version,gpu_uuids,nvlink_domain"
)


@dataclass(frozen=True)
class Staff:
    admin: Account  # operator-admin
    ca: Account  # operator, home jurisdiction CA


@pytest.fixture
async def staff(db: AsyncSession, clock: OffsetClock) -> Staff:
    """Two regions (CA, SE) with a site each, two GPU models and the provider staff."""
    now = clock.now()
    for code, country, site in (("ca-qc-1", "CA", "qc-mtl-1"), ("se-north-1", "SE", "se-lla-1")):
        db.add(
            Region(
                code=code,
                name=code,
                jurisdiction=country,
                sovereignty_group=country,
                currency="EUR",
                pue=Decimal("1.2"),
                grid_intensity_g_per_kwh=20,
                created_at=now,
            )
        )
        await db.flush()
        db.add(Site(code=site, region_code=code, name=site, city=site))
    for code in ("h100", "l40s"):
        db.add(
            GpuModel(
                code=code,
                name=code.upper(),
                vendor="NVIDIA",
                generation="x",
                memory_gib=80,
                tdp_watts=700,
                interconnect="NVLink",
                mig_profiles=[],
            )
        )
    admin = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN)
    ca = await make_user(db, provider_role=ProviderRole.OPERATOR, home_country="CA")
    await db.commit()
    return Staff(admin=admin, ca=ca)


@pytest.fixture
async def as_admin(client: Client, staff: Staff) -> dict[str, str]:
    return await login(client, staff.admin)


def uuids(host: str, count: int) -> list[str]:
    return [f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{host}/{i}')}" for i in range(count)]


def csv_row(
    host: str,
    *,
    region: str = "ca-qc-1",
    site: str = "qc-mtl-1",
    model: str = "h100",
    count: int = 2,
    gpu_uuids: list[str] | None = None,
    domain: str = "",
) -> str:
    ids = ";".join(gpu_uuids if gpu_uuids is not None else uuids(host, count))
    return (
        f"{host},{region},{site},r01,https://bmc-{host}.internal,{model},{count},"
        f"96.00.1,550.127,{ids},{domain}"
    )


def csv_file(*rows: str) -> str:
    return "\n".join([COLUMNS, *rows]) + "\n"


async def counts(db: AsyncSession) -> tuple[int, int, int]:
    """Nodes, GPUs and node events in the database."""
    result = []
    for table in (Node, Gpu, NodeEvent):
        result.append(int((await db.execute(select(func.count()).select_from(table))).scalar_one()))
    return result[0], result[1], result[2]


async def send(
    client: Client, headers: dict[str, str], fmt: str, content: str, **extra: Any
) -> Any:
    return await client.post(
        IMPORT, json={"format": fmt, "content": content, **extra}, headers=headers
    )


class TestImportAccepted:
    async def test_a_csv_file_enrols_every_node_with_its_gpus(
        self, client: Client, db: AsyncSession, staff: Staff, as_admin: dict[str, str]
    ) -> None:
        content = csv_file(
            csv_row("gpu-a1", count=2, domain="nvl-a"),
            csv_row("gpu-a2", model="l40s", count=1),
        )

        response = await send(client, as_admin, "csv", content)

        assert response.status_code == 200, response.text
        result = response.json()
        assert (result["imported"], result["dry_run"], len(result["node_ids"])) == (2, False, 2)
        first = (await client.get(f"/api/v1/nodes/{result['node_ids'][0]}")).json()
        assert (first["hostname"], first["state"], first["gpu_count"]) == ("gpu-a1", "enrolling", 2)
        assert [(g["index"], g["uuid"], g["nvlink_domain"]) for g in first["gpus"]] == [
            (0, uuids("gpu-a1", 2)[0], "nvl-a"),
            (1, uuids("gpu-a1", 2)[1], "nvl-a"),
        ]
        second = (await client.get(f"/api/v1/nodes/{result['node_ids'][1]}")).json()
        assert [g["nvlink_domain"] for g in second["gpus"]] == [None]
        events = (await client.get(f"/api/v1/nodes/{result['node_ids'][0]}/events")).json()
        assert [(e["from_state"], e["to_state"]) for e in events["items"]] == [(None, "enrolling")]
        assert events["items"][0]["actor"] == f"user:{staff.admin.user_id}"
        assert "row 2" in events["items"][0]["reason"]

    async def test_a_yaml_file_with_explicit_gpus_is_enrolled(
        self, client: Client, db: AsyncSession, as_admin: dict[str, str]
    ) -> None:
        node = {
            "hostname": "gpu-y1",
            "region": "se-north-1",
            "site": "se-lla-1",
            "rack": "r02",
            "bmc_endpoint": "https://bmc-gpu-y1.internal",
            "gpu_model": "h100",
            "gpu_count": 2,
            "firmware_version": "96.00.1",
            "driver_version": "550.127",
            "gpus": [
                {"uuid": "GPU-11111111-0001", "index": 1, "nvlink_domain": "pod-7"},
                {"uuid": "GPU-11111111-0000", "index": 0, "nvlink_domain": "pod-7"},
            ],
        }

        response = await send(client, as_admin, "yaml", yaml.safe_dump({"nodes": [node]}))

        assert response.status_code == 200, response.text
        node_id = response.json()["node_ids"][0]
        read = (await client.get(f"/api/v1/nodes/{node_id}")).json()
        assert (read["region_code"], read["state"]) == ("se-north-1", "enrolling")
        assert [(g["index"], g["uuid"], g["nvlink_domain"]) for g in read["gpus"]] == [
            (0, "GPU-11111111-0000", "pod-7"),
            (1, "GPU-11111111-0001", "pod-7"),
        ]
        events = (await client.get(f"/api/v1/nodes/{node_id}/events")).json()["items"]
        assert [e["to_state"] for e in events] == ["enrolling"]

    async def test_pci_addresses_numa_nodes_and_cpus_are_recorded_for_vm_passthrough(
        self, client: Client, db: AsyncSession, as_admin: dict[str, str]
    ) -> None:
        node = {
            "hostname": "gpu-p1", "region": "se-north-1", "site": "se-lla-1", "rack": "r02",
            "bmc_endpoint": "https://bmc-gpu-p1.internal", "gpu_model": "h100", "gpu_count": 2,
            "firmware_version": "96.00.1", "driver_version": "550.127",
            "numa_cpus": {0: "0-31", 1: "32-63"},
            "gpus": [
                {"uuid": "GPU-22222222-0000", "pci_address": "0000:3B:00.0", "numa_node": 0},
                {"uuid": "GPU-22222222-0001", "pci_address": "0000:86:00.0", "numa_node": 1},
            ],
        }  # fmt: skip

        response = await send(client, as_admin, "yaml", yaml.safe_dump({"nodes": [node]}))

        assert response.status_code == 200, response.text
        read = (await client.get(f"/api/v1/nodes/{response.json()['node_ids'][0]}")).json()
        assert [(g["pci_address"], g["numa_node"]) for g in read["gpus"]] == [
            ("0000:3b:00.0", 0),
            ("0000:86:00.0", 1),
        ]

    async def test_a_malformed_or_repeated_pci_address_names_the_field(
        self, client: Client, db: AsyncSession, as_admin: dict[str, str]
    ) -> None:
        node = {
            "hostname": "gpu-p2", "region": "se-north-1", "site": "se-lla-1", "rack": "r02",
            "bmc_endpoint": "https://bmc-gpu-p2.internal", "gpu_model": "h100", "gpu_count": 2,
            "firmware_version": "96.00.1", "driver_version": "550.127",
            "gpus": [
                {"uuid": "GPU-33333333-0000", "pci_address": "3b:00"},
                {"uuid": "GPU-33333333-0001", "pci_address": "0000:86:00.0"},
            ],
        }  # fmt: skip
        bad = await send(client, as_admin, "yaml", yaml.safe_dump({"nodes": [node]}))
        assert bad.status_code == 422, bad.text
        assert bad.json()["errors"][0]["field"] == "row 1: gpus[0].pci_address"

        node["gpus"][0]["pci_address"] = "0000:86:00.0"  # type: ignore[index]
        twice = await send(client, as_admin, "yaml", yaml.safe_dump({"nodes": [node]}))
        assert twice.status_code == 422, twice.text
        assert "PCI addresses repeat" in twice.text

    async def test_a_dry_run_checks_but_imports_nothing(
        self, client: Client, db: AsyncSession, as_admin: dict[str, str]
    ) -> None:
        before = await counts(db)

        response = await send(
            client, as_admin, "csv", csv_file(csv_row("gpu-d1"), csv_row("gpu-d2")), dry_run=True
        )

        assert response.status_code == 200, response.text
        assert response.json() == {"imported": 2, "dry_run": True, "node_ids": []}
        assert await counts(db) == before
        # The same file, for real, then goes through.
        real = await send(client, as_admin, "csv", csv_file(csv_row("gpu-d1"), csv_row("gpu-d2")))
        assert real.json()["imported"] == 2

    async def test_a_dry_run_reports_bad_rows_too(
        self, client: Client, as_admin: dict[str, str]
    ) -> None:
        response = await send(
            client, as_admin, "csv", csv_file(csv_row("gpu-d3", model="tpu")), dry_run=True
        )

        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["row 2: gpu_model"]


BAD_FILES = {
    # name: (rows after a good first row, the field the error must name)
    "unknown gpu model": ([csv_row("gpu-b2", model="tpu-v9")], "row 3: gpu_model"),
    "hostname repeated in the file": ([csv_row("gpu-b1")], "row 3: hostname"),
    "wrong number of gpu uuids": (
        [csv_row("gpu-b2", count=4, gpu_uuids=uuids("gpu-b2", 3))],
        "row 3: gpu_uuids",
    ),
    "unknown site": ([csv_row("gpu-b2", site="qc-nowhere-9")], "row 3: site"),
    "site of another region": ([csv_row("gpu-b2", site="se-lla-1")], "row 3: site"),
    "unknown region": ([csv_row("gpu-b2", region="mars-1")], "row 3: region"),
    "gpu uuid repeated": (
        [csv_row("gpu-b2", gpu_uuids=uuids("gpu-b1", 2))],
        "row 3: gpu uuid",
    ),
    "bad hostname": ([csv_row("GPU_B2!")], "row 3: hostname"),
    "gpu count not a number": ([csv_row("gpu-b2").replace(",2,", ",two,")], "row 3: gpu_count"),
}


class TestImportRefused:
    @pytest.mark.parametrize(("rows", "field"), BAD_FILES.values(), ids=BAD_FILES.keys())
    async def test_one_bad_row_refuses_the_whole_file(
        self,
        client: Client,
        db: AsyncSession,
        as_admin: dict[str, str],
        rows: list[str],
        field: str,
    ) -> None:
        before = await counts(db)

        response = await send(client, as_admin, "csv", csv_file(csv_row("gpu-b1"), *rows))

        assert response.status_code == 422, response.text
        problem = response.json()
        assert field in [e["field"] for e in problem["errors"]], problem["errors"]
        assert problem["detail"] == "No node was imported."
        assert await counts(db) == before

    async def test_a_hostname_already_enrolled_is_refused(
        self, client: Client, db: AsyncSession, as_admin: dict[str, str]
    ) -> None:
        first = await send(client, as_admin, "csv", csv_file(csv_row("gpu-e1")))
        assert first.status_code == 200
        before = await counts(db)

        again = await send(
            client,
            as_admin,
            "csv",
            csv_file(csv_row("gpu-e2"), csv_row("gpu-e1", gpu_uuids=uuids("gpu-e3", 2))),
        )

        assert again.status_code == 422
        assert [e["field"] for e in again.json()["errors"]] == ["row 3: hostname"]
        assert await counts(db) == before

    async def test_yaml_rows_are_numbered_from_one(
        self, client: Client, db: AsyncSession, as_admin: dict[str, str]
    ) -> None:
        good = {
            "hostname": "gpu-y2",
            "region": "ca-qc-1",
            "site": "qc-mtl-1",
            "rack": "r1",
            "bmc_endpoint": "https://bmc.internal",
            "gpu_model": "h100",
            "gpu_count": 1,
            "firmware_version": "1",
            "driver_version": "1",
            "gpu_uuids": "GPU-22222222-0000",
        }
        bad = {**good, "hostname": "gpu-y3", "gpu_uuids": "GPU-22222222-0001", "site": "x-1"}
        before = await counts(db)

        response = await send(client, as_admin, "yaml", yaml.safe_dump([good, bad]))

        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["row 2: site"]
        assert await counts(db) == before

    async def test_a_file_that_is_not_csv_shaped_names_the_header(
        self, client: Client, as_admin: dict[str, str]
    ) -> None:
        response = await send(client, as_admin, "csv", "hostname,colour\nx,blue\n")

        assert response.status_code == 422
        fields = {e["field"] for e in response.json()["errors"]}
        assert fields == {"header"}

    async def test_a_file_the_csv_reader_chokes_on_is_refused_not_a_crash(
        self, client: Client, db: AsyncSession, as_admin: dict[str, str]
    ) -> None:
        before = await counts(db)
        oversized = csv_row("gpu-big").replace("r01", "r" * 200_000)

        response = await send(client, as_admin, "csv", csv_file(csv_row("gpu-ok"), oversized))

        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["content"]
        assert await counts(db) == before

    async def test_an_operator_cannot_import(
        self, client: Client, db: AsyncSession, staff: Staff
    ) -> None:
        as_ca = await login(client, staff.ca)
        before = await counts(db)

        response = await send(client, as_ca, "csv", csv_file(csv_row("gpu-o1")))

        assert response.status_code == 403
        assert await counts(db) == before


@post(
    "/test-only/operator-node-import",
    opt=provider(ProviderPermission.NODES_OPERATE),
    status_code=200,
)
async def operator_import(
    data: NodeImport, db: AsyncSession, clock: Clock, operator: ProviderScope
) -> NodeImportResult:
    """Lends an operator's own scope to the import service.

    Operators cannot reach ``/api/v1/nodes/import`` (enrolment is for operator-admins), but
    the service still refuses rows outside an operator's jurisdiction should that grant ever
    widen; this route lets the test reach that rule through the real authorization layer.
    """
    return await service.import_nodes(db, clock, operator, data.format, data.content, False)


class TestImportJurisdiction:
    async def test_rows_outside_the_operators_jurisdiction_refuse_the_file(
        self, settings: Settings, clock: OffsetClock, db: AsyncSession, staff: Staff
    ) -> None:
        app = create_app(
            settings, clock=clock, configure_logs=False, extra_route_handlers=[operator_import]
        )
        content = csv_file(
            csv_row("gpu-j1"), csv_row("gpu-j2", region="se-north-1", site="se-lla-1")
        )
        before = await counts(db)
        async with AsyncTestClient(app=app) as client:
            as_ca = await login(client, staff.ca)
            response = await client.post(
                "/test-only/operator-node-import",
                json={"format": "csv", "content": content},
                headers=as_ca,
            )
            home_only = await client.post(
                "/test-only/operator-node-import",
                json={"format": "csv", "content": csv_file(csv_row("gpu-j1"))},
                headers=as_ca,
            )

        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["row 3: region"]
        assert home_only.status_code == 200, home_only.text
        assert (await counts(db))[0] == before[0] + 1
