"""What a tenancy request is refused for, with a problem that says why; nothing is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.sovereignty.residency import service as residency
from control_plane.sovereignty.residency.schemas import PolicyChange
from control_plane.tenancies.models import Tenancy
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.capacity import make_fleet, make_quota
from tests.fixtures.factories import Tenant
from tests.integration.tenancies.conftest import Client, create, used_milli


async def tenancy_count(db: AsyncSession) -> int:
    return int((await db.execute(select(func.count()).select_from(Tenancy))).scalar_one())


class TestCapacity:
    async def test_too_big_a_request_is_a_409_with_what_would_fit(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str], db: AsyncSession
    ) -> None:
        response = await create(client, org, auth, gpus_per_node=8, node_count=3)
        assert response.status_code == 409
        problem = response.json()
        assert problem["type"].endswith("/insufficient-capacity")
        assert problem["reason"]
        assert problem["detail"]
        assert isinstance(problem["suggestions"], list)
        assert problem["suggestions"]
        assert await tenancy_count(db) == 0
        assert await used_milli(db) == 0

    async def test_an_unknown_gpu_model_is_refused(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str], db: AsyncSession
    ) -> None:
        response = await create(client, org, auth, gpu_model="l40s")
        assert response.status_code == 409
        assert await tenancy_count(db) == 0


class TestWhenCapacityFrees:
    async def test_a_refusal_says_when_a_lease_ending_frees_room(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        clock: OffsetClock,
    ) -> None:
        ends = (clock.now() + timedelta(hours=3)).replace(microsecond=0)
        for name in ("first", "second"):
            held = await create(client, org, auth, name=name, gpus_per_node=8,
                                ends_at=ends.isoformat())  # fmt: skip
            assert held.status_code == 201, held.text
        response = await create(client, org, auth, name="third", gpus_per_node=4)
        assert response.status_code == 409
        expected = f"frees by {ends.strftime('%Y-%m-%d %H:%M')} UTC"
        assert any(expected in s for s in response.json()["suggestions"])

    async def test_releases_under_way_are_named_and_open_ended_holds_are_not(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        reconciler: Reconciler,
    ) -> None:
        first = (await create(client, org, auth, name="first", gpus_per_node=8)).json()
        await create(client, org, auth, name="second", gpus_per_node=8)
        refused = await create(client, org, auth, name="third", gpus_per_node=1)
        assert not any("frees" in s or "released" in s for s in refused.json()["suggestions"])
        await reconciler.converge()
        url = f"/api/v1/orgs/{org.org_id}/tenancies/{first['id']}/release"
        assert (await client.post(url, headers=auth)).status_code == 200
        response = await create(client, org, auth, name="third", gpus_per_node=1)
        assert response.status_code == 409
        assert any("being released now" in s for s in response.json()["suggestions"])


KINDS = ("bare_metal", "vm", "kubernetes", "slurm")


class TestQuota:
    @pytest.mark.parametrize("kind", ["vm", "kubernetes", "slurm"])
    async def test_the_default_quota_binds(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        db: AsyncSession,
        clock: OffsetClock,
        kind: str,
    ) -> None:
        await make_quota(db, clock, max_gpus=4)
        await db.commit()
        first = await create(client, org, auth, name="a", gpus_per_node=3, kind=kind)
        assert first.status_code == 201, first.text
        response = await create(client, org, auth, name="b", gpus_per_node=2, kind=kind)
        assert response.status_code == 409
        problem = response.json()
        assert problem["type"].endswith("/quota-exceeded")
        assert (problem["limit"], problem["in_use"], problem["requested"]) == (4, 3, 2)
        assert await used_milli(db) == 3000

    async def test_a_bare_metal_tenancy_counts_the_whole_node(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        db: AsyncSession,
        clock: OffsetClock,
    ) -> None:
        await make_quota(db, clock, max_gpus=4)
        await db.commit()
        response = await create(client, org, auth, gpus_per_node=3, kind="bare_metal")
        assert response.status_code == 409
        assert (response.json()["limit"], response.json()["requested"]) == (4, 8)
        assert await used_milli(db) == 0  # the node claimed during placement is given back

    async def test_an_org_override_replaces_the_default(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        db: AsyncSession,
        clock: OffsetClock,
    ) -> None:
        await make_quota(db, clock, max_gpus=1)
        await make_quota(db, clock, max_gpus=16, org_id=org.org_id)
        await db.commit()
        assert (await create(client, org, auth, gpus_per_node=8)).status_code == 201
        quotas = (await client.get(f"/api/v1/orgs/{org.org_id}/quotas", headers=auth)).json()
        assert quotas == [
            {"org_id": org.org_id, "region": "*", "gpu_model": "*", "max_gpus": 16, "in_use": 8}
        ]

    async def test_a_per_model_quota_leaves_other_models_alone(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        fleet: list[str],
        db: AsyncSession,
        clock: OffsetClock,
    ) -> None:
        await make_fleet(db, clock, model="l40s", nodes=1, gpus_per_node=4, prefix="l40s")
        await make_quota(db, clock, max_gpus=0, model="h100")
        await db.commit()
        assert (await create(client, org, auth, name="h")).status_code == 409
        assert (await create(client, org, auth, name="l", gpu_model="l40s")).status_code == 201


class TestResidency:
    @pytest.mark.parametrize("kind", KINDS)
    async def test_a_region_outside_the_policy_is_refused_naming_the_rule(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        db: AsyncSession,
        clock: OffsetClock,
        kind: str,
    ) -> None:
        await make_fleet(db, clock, region="us-east-1", model="a100", nodes=1, prefix="us")
        await residency.seed_policy(
            db, clock, org.org_id, PolicyChange(template="canada-sovereign")
        )
        await db.commit()
        response = await create(client, org, auth, region="us-east-1", gpu_model="a100",
                                kind=kind)  # fmt: skip
        assert response.status_code == 403
        problem = response.json()
        assert problem["type"].endswith("/residency-denied")
        assert problem["rule"]
        assert await tenancy_count(db) == 0
        assert await used_milli(db) == 0

    async def test_any_region_picks_only_allowed_ones(
        self,
        client: Client,
        org: Tenant,
        auth: dict[str, str],
        db: AsyncSession,
        clock: OffsetClock,
    ) -> None:
        await make_fleet(db, clock, region="us-east-1", model="a100", nodes=1, prefix="us")
        await make_fleet(db, clock, region="se-north-1", model="a100", nodes=1, prefix="se")
        await residency.seed_policy(
            db, clock, org.org_id, PolicyChange(template="eu-data-boundary")
        )
        await db.commit()
        response = await create(client, org, auth, region="any", gpu_model="a100")
        assert response.status_code == 201, response.text
        assert response.json()["region"] == "se-north-1"


class TestInput:
    async def test_unknown_fields_are_a_400_naming_them(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str]
    ) -> None:
        response = await create(client, org, auth, gpus=3)
        assert response.status_code == 400
        assert "gpus" in response.text

    async def test_shape_and_explicit_gpus_together_are_refused(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str]
    ) -> None:
        response = await create(client, org, auth, shape="small")
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "body.shape"

    async def test_a_lease_ending_too_soon_is_refused(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str]
    ) -> None:
        soon = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
        response = await create(client, org, auth, ends_at=soon)
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "body.ends_at"

    async def test_an_unknown_region_is_a_400(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str]
    ) -> None:
        response = await create(client, org, auth, region="xx-nowhere-1")
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "body.region"

    async def test_an_auditor_cannot_create(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        from control_plane.identity.roles import TenantRole
        from tests.fixtures.factories import login

        auditor = await login(client, org.accounts[TenantRole.AUDITOR])
        response = await create(client, org, auditor)
        assert response.status_code == 403
