"""A tenancy from request to release through the API and the reconciler (sim driver)."""

from __future__ import annotations

from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.models import AuditEntryRow as AuditEntry
from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.inventory.lifecycle import NodeState
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.capacity import make_fleet, make_quota
from tests.fixtures.factories import Tenant, bearer, make_api_key, make_project
from tests.fixtures.statements import listed_with_statements
from tests.integration.tenancies.conftest import (
    Client,
    create,
    live_allocations,
    tenancies_url,
    used_milli,
)


async def timeline(client: Client, org: Tenant, auth: dict[str, str], tenancy_id: str) -> list[str]:
    response = await client.get(f"{tenancies_url(org)}/{tenancy_id}/events", headers=auth)
    assert response.status_code == 200
    return [e["to_state"] for e in response.json()["items"] if e["kind"] == "transition"]


class TestCreate:
    async def test_a_request_is_placed_on_one_nvlink_node_and_provisions(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str], db: AsyncSession
    ) -> None:
        response = await create(client, org, auth, gpus_per_node=4, labels={"team": "nlp"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["state"] == "provisioning"
        assert body["gpu_count"] == 4
        assert body["region"] == "ca-qc-1"
        assert body["simulated"] is True
        assert body["driver"] == "sim"
        assert len(body["allocations"]) == 1
        assert len(body["allocations"][0]["gpu_indices"]) == 4
        assert await timeline(client, org, auth, body["id"]) == ["placing", "provisioning"]
        assert await used_milli(db) == 4000

    async def test_the_reconciler_brings_it_to_active(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
    ) -> None:
        tenancy = (await create(client, org, auth)).json()
        await reconciler.converge()
        body = (await client.get(f"{tenancies_url(org)}/{tenancy['id']}", headers=auth)).json()
        assert body["state"] == "active"
        assert body["activated_at"] is not None
        assert body["facts"]["simulated"] == "true"
        assert body["facts"]["access"] == "sbatch"
        assert await timeline(client, org, auth, tenancy["id"]) == [
            "placing", "provisioning", "active",
        ]  # fmt: skip

    async def test_every_transition_is_in_the_ledger(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
        db: AsyncSession,
    ) -> None:
        tenancy = (await create(client, org, auth)).json()
        await reconciler.converge()
        rows = await db.execute(
            select(AuditEntry.actor_kind)
            .where(AuditEntry.action == "tenancy.transition", AuditEntry.target_id == tenancy["id"])
            .order_by(AuditEntry.at, AuditEntry.seq)
        )
        assert list(rows.scalars()) == ["user", "user", "system"]

    async def test_bare_metal_takes_a_whole_node(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str], db: AsyncSession
    ) -> None:
        response = await create(client, org, auth, kind="bare_metal", gpus_per_node=8,
                                image="ubuntu-24.04")  # fmt: skip
        assert response.status_code == 201, response.text
        assert response.json()["gpu_count"] == 8
        assert await used_milli(db) == 8000

    async def test_nodes_draining_or_in_maintenance_get_no_new_work(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        db: AsyncSession,
        clock: OffsetClock,
    ) -> None:
        await make_fleet(db, clock, nodes=1, prefix="drain", state=NodeState.DRAINING)
        await make_fleet(db, clock, nodes=1, prefix="maint", state=NodeState.MAINTENANCE)
        await db.commit()
        response = await create(client, org, auth)
        assert response.status_code == 409
        assert response.json()["type"].endswith("/insufficient-capacity")
        assert await live_allocations(db) == 0


class TestRelease:
    async def test_release_cleans_and_returns_the_gpus(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
        db: AsyncSession,
    ) -> None:
        tenancy = (await create(client, org, auth, gpus_per_node=8)).json()
        await reconciler.converge()
        response = await client.post(f"{tenancies_url(org)}/{tenancy['id']}/release", headers=auth)
        assert response.status_code == 200
        assert response.json()["state"] == "releasing"
        await reconciler.converge()
        body = (await client.get(f"{tenancies_url(org)}/{tenancy['id']}", headers=auth)).json()
        assert body["state"] == "released"
        assert body["allocations"] == []
        assert await timeline(client, org, auth, tenancy["id"]) == [
            "placing", "provisioning", "active", "releasing", "cleaning", "released",
        ]  # fmt: skip
        assert await used_milli(db) == 0

    async def test_released_gpus_can_be_placed_again(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
    ) -> None:
        first = (await create(client, org, auth, name="a", gpus_per_node=8, node_count=2)).json()
        assert (await create(client, org, auth, name="b", gpus_per_node=1)).status_code == 409
        await client.post(f"{tenancies_url(org)}/{first['id']}/release", headers=auth)
        await reconciler.converge()
        assert (await create(client, org, auth, name="b", gpus_per_node=1)).status_code == 201

    async def test_releasing_twice_is_not_an_error(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str]
    ) -> None:
        tenancy = (await create(client, org, auth)).json()
        url = f"{tenancies_url(org)}/{tenancy['id']}/release"
        assert (await client.post(url, headers=auth)).status_code == 200
        again = await client.post(url, headers=auth)
        assert again.status_code == 200
        assert again.json()["state"] == "releasing"


class TestList:
    async def test_lists_newest_first_and_filters_by_state(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
    ) -> None:
        first = (await create(client, org, auth, name="first")).json()
        await reconciler.converge()
        second = (await create(client, org, auth, name="second")).json()
        everything = (await client.get(tenancies_url(org), headers=auth)).json()["items"]
        assert [t["id"] for t in everything] == [second["id"], first["id"]]
        active = await client.get(tenancies_url(org), params={"state": "active"}, headers=auth)
        assert [t["id"] for t in active.json()["items"]] == [first["id"]]

    async def test_a_list_reads_as_each_tenancy_does_in_as_many_queries_for_four_as_for_one(
        self, app: Litestar, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
    ) -> None:  # fmt: skip
        url = tenancies_url(org)
        await create(client, org, auth, name="one", gpus_per_node=4)
        _, for_one = await listed_with_statements(app, client, url, auth)
        for name in ("two", "three", "four"):  # two per node: both hostnames show
            assert (await create(client, org, auth, name=name, gpus_per_node=4)).is_success
        items, for_four = await listed_with_statements(app, client, url, auth)
        assert for_four == for_one
        singles = [(await client.get(f"{tenancies_url(org)}/{t['id']}", headers=auth)).json()
                   for t in items]  # fmt: skip
        assert items == singles
        assert {a["hostname"] for t in items for a in t["allocations"]} == {
            "qc-h100-00", "qc-h100-01"
        }  # fmt: skip

    async def test_a_tenancy_on_two_nodes_reads_its_gpus_per_node_in_hostname_order(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str]
    ) -> None:
        created = await create(client, org, auth, name="wide", gpus_per_node=8, node_count=2)
        assert created.status_code == 201, created.text

        listed = (await client.get(tenancies_url(org), headers=auth)).json()["items"]

        all8 = list(range(8))
        assert listed[0]["allocations"] == [
            {"node_id": fleet[0], "hostname": "qc-h100-00", "gpu_indices": all8, "gpu_milli": 1000},
            {"node_id": fleet[1], "hostname": "qc-h100-01", "gpu_indices": all8, "gpu_milli": 1000},
        ]  # fmt: skip


class TestProjectKeys:
    async def test_a_project_key_lists_reads_and_follows_its_projects_tenancies_only(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        db: AsyncSession,
    ) -> None:  # fmt: skip
        other_project = await make_project(db, org.org_id)
        await db.commit()
        ours = []
        for n in (1, 2):
            made = await create(client, org, auth, name=f"ours-{n}", project_id=org.project_id)
            ours.append(made.json()["id"])
        theirs = (await create(client, org, auth, name="theirs", project_id=other_project)).json()
        key = bearer(await make_api_key(db, org, TenantRole.MEMBER))  # the org's first project
        await db.commit()

        listed = (await client.get(tenancies_url(org), headers=key)).json()["items"]
        first = await client.get(tenancies_url(org), params={"limit": 1}, headers=key)
        cursor = first.json()["next_cursor"]
        rest = await client.get(tenancies_url(org), params={"limit": 1, "cursor": cursor},
                                headers=key)  # fmt: skip
        by_kind = await client.get(tenancies_url(org), params={"kind": "slurm"}, headers=key)

        assert [t["id"] for t in listed] == ours[::-1]
        assert [t["id"] for t in first.json()["items"] + rest.json()["items"]] == ours[::-1]
        assert rest.json()["next_cursor"] is None
        assert [t["id"] for t in by_kind.json()["items"]] == ours[::-1]
        for path in ("", "/events"):
            refused = await client.get(f"{tenancies_url(org)}/{theirs['id']}{path}", headers=key)
            assert refused.status_code == 404, path
            mine = await client.get(f"{tenancies_url(org)}/{ours[0]}{path}", headers=key)
            assert mine.status_code == 200, path
        everything = (await client.get(tenancies_url(org), headers=auth)).json()["items"]
        assert theirs["id"] in {t["id"] for t in everything}  # the member sees both projects


class TestGpuClass:
    async def test_a_class_takes_any_model_of_it_with_room(
        self, client: Client, org: Tenant, auth: dict[str, str], db: AsyncSession,
        clock: OffsetClock,
    ) -> None:  # fmt: skip
        await make_fleet(db, clock, model="h100", nodes=1, gpus_per_node=8, prefix="cls-h100")
        await make_fleet(db, clock, model="h200", nodes=1, gpus_per_node=8, prefix="cls-h200")
        await make_fleet(db, clock, model="a100", nodes=1, gpus_per_node=8, prefix="cls-a100")
        await db.commit()
        models = []
        for n in range(2):
            response = await create(client, org, auth, name=f"hopper-{n}", gpu_model=None,
                                    gpu_class="hopper", gpus_per_node=8)  # fmt: skip
            assert response.status_code == 201, response.text
            models.append(response.json()["gpu_model"])
        assert sorted(models) == ["h100", "h200"]  # never the Ampere node
        third = await create(client, org, auth, name="hopper-2", gpu_model=None,
                             gpu_class="hopper", gpus_per_node=8)  # fmt: skip
        assert third.status_code == 409
        assert third.json()["type"].endswith("/insufficient-capacity")

    async def test_an_unknown_class_or_a_class_with_a_model_is_refused(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str]
    ) -> None:
        unknown = await create(client, org, auth, gpu_model=None, gpu_class="volta")
        assert unknown.status_code == 400
        assert unknown.json()["errors"][0]["field"] == "body.gpu_class"
        both = await create(client, org, auth, gpu_class="hopper")
        assert both.status_code == 400
        assert both.json()["errors"][0]["field"] == "body.gpu_model"

    async def test_the_class_respects_each_models_quota(
        self, client: Client, org: Tenant, auth: dict[str, str], db: AsyncSession,
        clock: OffsetClock,
    ) -> None:  # fmt: skip
        await make_fleet(db, clock, model="h100", nodes=1, gpus_per_node=8, prefix="q-h100")
        await make_fleet(db, clock, model="h200", nodes=1, gpus_per_node=8, prefix="q-h200")
        await make_quota(db, clock, max_gpus=0, model="h100")
        await db.commit()
        response = await create(client, org, auth, gpu_model=None, gpu_class="hopper",
                                gpus_per_node=4)  # fmt: skip
        assert response.status_code == 201, response.text
        assert response.json()["gpu_model"] == "h200"
