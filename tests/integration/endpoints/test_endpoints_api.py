"""Endpoints through the API, replicas on the simulator: create, scale, versions and
canary splits, governance, residency refusals, delete."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.identity.models import Membership
from control_plane.identity.roles import TenantRole
from control_plane.ids import new_id
from control_plane.settings import Settings
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.factories import Tenant, make_user, signed_in
from tests.fixtures.statements import listed_with_statements
from tests.integration.endpoints.conftest import (
    Client,
    create_endpoint,
    endpoints_url,
    fake_model,
)
from tests.integration.tenancies.conftest import used_milli


class TestCreate:
    async def test_replicas_are_placed_as_fractional_inference_tenancies(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        settings: Settings,
        db: AsyncSession,
        reconciler: Reconciler,
    ) -> None:
        uri = fake_model(settings, "tiny")
        created = await create_endpoint(
            client, org, auth, model_uri=uri, min_replicas=2, max_replicas=3
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["desired_replicas"] == 2
        assert body["state"] == "deploying"
        assert [v["served_model"] for v in body["versions"]] == ["chat-v1"]
        assert body["versions"][0]["approval"] == "not-required"
        assert await used_milli(db) == 500  # two replicas of a quarter GPU each
        tenancies = (
            await client.get(f"/api/v1/orgs/{org.org_id}/tenancies?kind=inference", headers=auth)
        ).json()["items"]
        assert {t["managed_by"] for t in tenancies} == {f"endpoint:{body['id']}"}
        assert all(t["allocations"][0]["gpu_milli"] == 250 for t in tenancies)
        await reconciler.converge()
        ready = (await client.get(f"{endpoints_url(org)}/chat", headers=auth)).json()
        assert ready["state"] == "ready"
        assert ready["ready_replicas"] == 2

    async def test_managed_replicas_cannot_be_released_directly(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        settings: Settings,
    ) -> None:
        await create_endpoint(client, org, auth, model_uri=fake_model(settings, "tiny"))
        tenancy = (
            await client.get(f"/api/v1/orgs/{org.org_id}/tenancies?kind=inference", headers=auth)
        ).json()["items"][0]
        released = await client.post(
            f"/api/v1/orgs/{org.org_id}/tenancies/{tenancy['id']}/release", headers=auth
        )
        assert released.status_code == 409
        assert "endpoint:" in released.json()["detail"]

    async def test_a_tenancy_of_kind_inference_is_refused(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str]
    ) -> None:
        response = await client.post(
            f"/api/v1/orgs/{org.org_id}/tenancies",
            headers=auth,
            json={
                "name": "x",
                "kind": "inference",
                "region": "ca-qc-1",
                "gpu_model": "h100",
                "gpus_per_node": 1,
            },
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "body.kind"

    async def test_model_outside_every_store_is_refused_with_the_field(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str], tmp_path
    ) -> None:
        stray = tmp_path / "elsewhere" / "m"
        stray.mkdir(parents=True)
        response = await create_endpoint(client, org, auth, model_uri=stray.as_uri())
        assert response.status_code == 400
        assert response.json()["errors"] == [
            {"field": "body.model_uri", "reason": "outside every model store"}
        ]

    async def test_model_in_a_region_the_policy_forbids_is_refused(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        settings: Settings,
    ) -> None:
        owner = await signed_in(client, org.accounts[TenantRole.OWNER])
        auth = await signed_in(client, org.accounts[TenantRole.MEMBER])
        policy = await client.put(
            f"/api/v1/orgs/{org.org_id}/residency-policy",
            headers=owner,
            json={"template": "canada-sovereign", "force": True},
        )
        assert policy.status_code in (200, 201), policy.text
        uri = fake_model(settings, "tiny", region="se-north-1")
        response = await create_endpoint(client, org, auth, model_uri=uri)
        assert response.status_code == 403, response.text
        assert "se-north-1" in response.text

    async def test_duplicate_name_conflicts(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        settings: Settings,
    ) -> None:
        uri = fake_model(settings, "tiny")
        assert (await create_endpoint(client, org, auth, model_uri=uri)).status_code == 201
        again = await create_endpoint(client, org, auth, model_uri=uri)
        assert again.status_code == 409


class TestList:
    async def test_a_list_reads_as_each_endpoint_does_in_as_many_queries_for_three_as_one(
        self, app: Litestar, client: Client, org: Tenant, auth: dict[str, str],
        fleet: list[str], settings: Settings,
    ) -> None:  # fmt: skip
        uri = fake_model(settings, "tiny")
        assert (await create_endpoint(client, org, auth, model_uri=uri)).is_success
        _, for_one = await listed_with_statements(app, client, endpoints_url(org), auth)
        for name, replicas in (("chat-b", 2), ("chat-c", 3)):
            created = await create_endpoint(client, org, auth, name=name, model_uri=uri,
                                            min_replicas=replicas, max_replicas=3)  # fmt: skip
            assert created.is_success, created.text
        items, for_three = await listed_with_statements(app, client, endpoints_url(org), auth)
        assert for_three == for_one
        singles = [(await client.get(f"{endpoints_url(org)}/{e['name']}", headers=auth)).json()
                   for e in items]  # fmt: skip
        assert items == singles
        assert sorted(len(e["replicas"]) for e in items) == [1, 2, 3]
        assert all(len(e["versions"]) == 1 for e in items)


class TestScaleVersionsDelete:
    async def test_scale_down_releases_and_up_places(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        settings: Settings,
        db: AsyncSession,
    ) -> None:
        await create_endpoint(
            client, org, auth, model_uri=fake_model(settings, "tiny"), max_replicas=4
        )
        up = await client.put(
            f"{endpoints_url(org)}/chat/scale",
            headers=auth,
            json={"min_replicas": 1, "max_replicas": 4, "replicas": 3},
        )
        assert up.status_code == 200, up.text
        assert len(up.json()["replicas"]) == 3
        assert await used_milli(db) == 750
        down = await client.put(
            f"{endpoints_url(org)}/chat/scale",
            headers=auth,
            json={"min_replicas": 1, "max_replicas": 4, "replicas": 1},
        )
        live = [r for r in down.json()["replicas"] if r["state"] not in ("releasing", "cleaning")]
        assert len(live) == 1
        bad = await client.put(
            f"{endpoints_url(org)}/chat/scale",
            headers=auth,
            json={"min_replicas": 3, "max_replicas": 2},
        )
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["field"] == "body.max_replicas"

    async def test_canary_version_splits_traffic_and_retires_at_zero(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        settings: Settings,
    ) -> None:
        await create_endpoint(client, org, auth, model_uri=fake_model(settings, "tiny"))
        canary = await client.post(
            f"{endpoints_url(org)}/chat/versions",
            headers=auth,
            json={"model_uri": fake_model(settings, "tiny2"), "traffic_percent": 10},
        )
        assert canary.status_code == 201, canary.text
        shares = {v["number"]: v["traffic_percent"] for v in canary.json()["versions"]}
        assert shares == {1: 90, 2: 10}
        bad = await client.put(
            f"{endpoints_url(org)}/chat/traffic", headers=auth, json={"percent": {"1": 50, "2": 40}}
        )
        assert bad.status_code == 400
        promoted = await client.put(
            f"{endpoints_url(org)}/chat/traffic", headers=auth, json={"percent": {"1": 0, "2": 100}}
        )
        assert [v["number"] for v in promoted.json()["versions"]] == [2]
        events = (await client.get(f"{endpoints_url(org)}/chat/events", headers=auth)).json()
        assert any("v1: 0%, v2: 100%" in e["detail"] for e in events["items"])

    async def test_delete_releases_every_replica(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        settings: Settings,
        reconciler: Reconciler,
        db: AsyncSession,
    ) -> None:
        await create_endpoint(
            client,
            org,
            auth,
            model_uri=fake_model(settings, "tiny"),
            min_replicas=2,
            max_replicas=2,
        )
        deleted = await client.delete(f"{endpoints_url(org)}/chat", headers=auth)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["state"] == "deleted"
        again = await client.delete(f"{endpoints_url(org)}/chat", headers=auth)
        assert again.status_code == 200  # a retried delete answers the same
        assert again.json()["id"] == deleted.json()["id"]
        await reconciler.converge()
        assert await used_milli(db) == 0
        assert (await client.get(f"{endpoints_url(org)}/chat", headers=auth)).status_code == 404


class TestGovernance:
    async def test_a_version_serves_only_after_another_person_approves_it(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        settings: Settings,
        db: AsyncSession,
    ) -> None:
        owner = await signed_in(client, org.accounts[TenantRole.OWNER])
        auth = await signed_in(client, org.accounts[TenantRole.MEMBER])
        refused = await client.put(
            f"/api/v1/orgs/{org.org_id}/model-governance",
            headers=auth,
            json={"require_approval": True},
        )
        assert refused.status_code == 403  # members are not validators
        assert "models:validate" in refused.json()["detail"]
        switched = await client.put(
            f"/api/v1/orgs/{org.org_id}/model-governance",
            headers=owner,
            json={"require_approval": True},
        )
        assert switched.json()["require_approval"] is True
        created = (
            await create_endpoint(client, org, owner, model_uri=fake_model(settings, "tiny"))
        ).json()
        assert created["state"] == "awaiting-approval"
        assert created["replicas"] == []
        assert await used_milli(db) == 0
        url = f"{endpoints_url(org)}/chat/versions/1/decision"
        own = await client.post(url, headers=owner, json={"decision": "approve"})
        assert own.status_code == 403  # four eyes: not by who added it
        assert "other than who added it" in own.json()["detail"]
        validator = await _second_owner(client, org, db)
        approved = await client.post(
            url, headers=validator, json={"decision": "approve", "note": "licence checked"}
        )
        assert approved.status_code == 200, approved.text
        body = approved.json()
        assert body["versions"][0]["approval"] == "approved"
        assert len(body["replicas"]) == 1
        ledger = await client.get(f"/api/v1/orgs/{org.org_id}/audit/entries", headers=owner)
        actions = [e["action"] for e in ledger.json()["items"]]
        assert any("decision" in a for a in actions), actions


async def _second_owner(client: Client, org: Tenant, db: AsyncSession) -> dict[str, str]:
    """Another validator of the organization (an admin)."""
    account = await make_user(db)
    db.add(
        Membership(
            id=new_id("mem"),
            org_id=org.org_id,
            user_id=account.user_id,
            role=TenantRole.ADMIN,
            created_at=datetime.now(UTC),
        )
    )
    await db.commit()
    return await signed_in(client, account)
