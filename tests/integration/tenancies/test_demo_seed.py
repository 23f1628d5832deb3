"""`make run`'s demo lab offers shapes and a default quota, so a tenancy works at once."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.identity.models import Organization
from control_plane.identity.roles import ProviderRole
from control_plane.seed.demo import DEFAULT_MAX_GPUS, DEMO_LOGINS, SHAPES, seed_demo
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.factories import Account, login, make_user
from tests.integration.tenancies.conftest import Client


async def seeded(db: AsyncSession, clock: Clock) -> tuple[str, Account]:
    """The demo seed (users made first by the factory, which skips the slow password hash);
    returns the demo organization and its member."""
    accounts = {}
    for demo in DEMO_LOGINS:
        role = ProviderRole.OPERATOR if demo.email.startswith("ops-") else None
        accounts[demo.email] = await make_user(db, demo.email, provider_role=role)
    await seed_demo(db, clock)
    await seed_demo(db, clock)  # twice: the second run adds nothing
    await db.commit()
    query = select(Organization.id).where(Organization.slug == "demo")
    return (await db.execute(query)).scalar_one(), accounts["member@demo.example"]


class TestDemoLab:
    async def test_the_cheapest_fitting_shape_is_suggested_within_the_policy(
        self, client: Client, db: AsyncSession, clock: Clock
    ) -> None:
        org_id, member = await seeded(db, clock)
        auth = await login(client, member)
        shapes = await client.get("/api/v1/regions/ca-qc-1/shapes", headers=auth)
        names = [s["name"] for s in shapes.json()]
        assert sorted(names) == sorted(n for r, n, *_ in SHAPES if r == "ca-qc-1")
        answer = await client.get(
            f"/api/v1/orgs/{org_id}/shape-suggestion",
            params={"gpu_memory_gib": 120, "gpu_count": 2, "interconnect": "nvlink"},
            headers=auth,
        )
        assert answer.status_code == 200, answer.text
        suggestion = answer.json()["shape"]
        # 2x H100 fits 120 GiB on NVLink; 62 SEK an hour in Sweden beats 8.90 CAD in
        # Québec; us-east-1 is outside the demo's policy and is never offered.
        assert (suggestion["region"], suggestion["name"]) == ("se-north-1", "medium")
        others = [(a["region"], a["name"]) for a in answer.json()["alternatives"]]
        assert ("ca-qc-1", "medium") in others
        assert all(region != "us-east-1" for region, _ in others)
        quotas = (await client.get(f"/api/v1/orgs/{org_id}/quotas", headers=auth)).json()
        assert [(q["org_id"], q["max_gpus"]) for q in quotas] == [("*", DEFAULT_MAX_GPUS)]

    async def test_a_member_gets_a_medium_tenancy_running(
        self, client: Client, db: AsyncSession, clock: Clock, reconciler: Reconciler
    ) -> None:
        org_id, member = await seeded(db, clock)
        auth = await login(client, member)
        created = await client.post(
            f"/api/v1/orgs/{org_id}/tenancies",
            json={"name": "first", "kind": "slurm", "region": "ca-qc-1", "shape": "medium"},
            headers=auth,
        )
        assert created.status_code == 201, created.text
        await reconciler.converge()
        body = (
            await client.get(
                f"/api/v1/orgs/{org_id}/tenancies/{created.json()['id']}", headers=auth
            )
        ).json()
        assert (body["state"], body["gpu_count"], body["gpu_model"]) == ("active", 2, "h100")
        assert body["simulated"] is True
