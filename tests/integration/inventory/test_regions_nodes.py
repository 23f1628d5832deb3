"""Regions, the GPU catalog and nodes: who may read and change them, filters, lifecycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole
from control_plane.inventory.models import Node, NodeEvent
from control_plane.seed.demo import DEMO_LOGINS, seed_demo
from tests.fixtures.factories import Account, make_user, signed_in

Client = AsyncTestClient[Litestar]


@dataclass(frozen=True)
class Staff:
    """The demo fleet's people: provider operators and a tenant user."""

    admin: Account  # operator-admin
    ca: Account  # operator, home jurisdiction CA
    se: Account  # operator, home jurisdiction SE
    tenant_user: Account  # member of the demo organization, no provider role


@pytest.fixture
async def staff(db: AsyncSession, clock: OffsetClock) -> Staff:
    """The demo regions, catalog and 42-node fleet, with its operators and users.

    The users are made first (with the factories' precomputed password hash), so the seed
    finds them and skips hashing six passwords.
    """
    roles = {
        "ops-admin@provider.example": (ProviderRole.OPERATOR_ADMIN, None),
        "ops-ca@provider.example": (ProviderRole.OPERATOR, "CA"),
        "ops-se@provider.example": (ProviderRole.OPERATOR, "SE"),
    }
    accounts = {}
    for demo in DEMO_LOGINS:
        role, home = roles.get(demo.email, (None, None))
        accounts[demo.email] = await make_user(
            db, demo.email, provider_role=role, home_country=home
        )
    await seed_demo(db, clock)
    await db.commit()
    return Staff(
        admin=accounts["ops-admin@provider.example"],
        ca=accounts["ops-ca@provider.example"],
        se=accounts["ops-se@provider.example"],
        tenant_user=accounts["member@demo.example"],
    )


async def node_named(db: AsyncSession, hostname: str) -> Node:
    return (await db.execute(select(Node).where(Node.hostname == hostname))).scalar_one()


async def all_pages(client: Client, url: str, headers: dict[str, str], **params: Any) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=query, headers=headers)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


REGION = {
    "code": "no-oslo-1",
    "name": "Oslo (Norway)",
    "jurisdiction": "NO",
    "sovereignty_group": "EEA",
    "currency": "NOK",
    "pue": "1.12",
    "grid_intensity_g_per_kwh": 19,
}
GPU_MODEL = {
    "code": "b200",
    "name": "NVIDIA B200",
    "vendor": "NVIDIA",
    "generation": "Blackwell",
    "memory_gib": 192,
    "tdp_watts": 1000,
    "interconnect": "NVLink 5",
    "mig_profiles": ["1g.23gb", "7g.180gb"],
}


class TestRegionsAndCatalog:
    async def test_any_signed_in_user_lists_and_reads_regions(
        self, client: Client, staff: Staff
    ) -> None:
        as_tenant = await signed_in(client, staff.tenant_user)

        listed = await client.get("/api/v1/regions", headers=as_tenant)
        one = await client.get("/api/v1/regions/ca-qc-1", headers=as_tenant)
        models = await client.get("/api/v1/gpu-models", headers=as_tenant)

        assert [r["code"] for r in listed.json()["items"]] == ["ca-qc-1", "se-north-1", "us-east-1"]
        assert one.json()["jurisdiction"] == "CA"
        assert {s["code"] for s in one.json()["sites"]} == {"qc-mtl-1", "qc-bea-1"}
        assert {m["code"] for m in models.json()["items"]} == {"a100", "h100", "h200", "l40s"}

    async def test_anonymous_callers_see_no_regions(self, client: Client, staff: Staff) -> None:
        assert (await client.get("/api/v1/regions")).status_code == 401

    async def test_an_unknown_region_is_404(self, client: Client, staff: Staff) -> None:
        as_tenant = await signed_in(client, staff.tenant_user)

        response = await client.get("/api/v1/regions/xx-nowhere-1", headers=as_tenant)

        assert response.status_code == 404

    async def test_operator_admin_creates_regions_sites_and_gpu_models(
        self, client: Client, staff: Staff
    ) -> None:
        as_admin = await signed_in(client, staff.admin)

        region = await client.post("/api/v1/regions", json=REGION, headers=as_admin)
        site = await client.post(
            "/api/v1/regions/no-oslo-1/sites",
            json={"code": "no-osl-1", "name": "Oslo 1", "city": "Oslo"},
            headers=as_admin,
        )
        model = await client.post("/api/v1/gpu-models", json=GPU_MODEL, headers=as_admin)

        assert (region.status_code, site.status_code, model.status_code) == (201, 201, 201)
        read = (await client.get("/api/v1/regions/no-oslo-1", headers=as_admin)).json()
        assert (read["jurisdiction"], [s["code"] for s in read["sites"]]) == ("NO", ["no-osl-1"])
        catalog = (await client.get("/api/v1/gpu-models", headers=as_admin)).json()["items"]
        assert "b200" in {m["code"] for m in catalog}

    @pytest.mark.parametrize("who", ["ca", "tenant_user"])
    async def test_only_operator_admins_change_the_catalog(
        self, client: Client, staff: Staff, who: str
    ) -> None:
        headers = await signed_in(client, getattr(staff, who))

        region = await client.post("/api/v1/regions", json=REGION, headers=headers)
        site = await client.post(
            "/api/v1/regions/ca-qc-1/sites",
            json={"code": "qc-new-1", "name": "New", "city": "Québec"},
            headers=headers,
        )
        model = await client.post("/api/v1/gpu-models", json=GPU_MODEL, headers=headers)
        renamed = await client.patch(
            "/api/v1/regions/ca-qc-1", json={"name": "Renamed"}, headers=headers
        )

        assert [r.status_code for r in (region, site, model, renamed)] == [403] * 4
        as_admin = await signed_in(client, staff.admin)
        assert (await client.get("/api/v1/regions/no-oslo-1", headers=as_admin)).status_code == 404

    @pytest.mark.parametrize("pue", ["0.99", "3.01", "0", "-1.2"])
    async def test_pue_out_of_range_is_a_400_naming_pue(
        self, client: Client, staff: Staff, pue: str
    ) -> None:
        as_admin = await signed_in(client, staff.admin)

        created = await client.post(
            "/api/v1/regions", json={**REGION, "pue": pue}, headers=as_admin
        )
        updated = await client.patch("/api/v1/regions/ca-qc-1", json={"pue": pue}, headers=as_admin)

        for response in (created, updated):
            assert response.status_code == 400, response.text
            assert [e["field"] for e in response.json()["errors"]] == ["body.pue"]
        region = (await client.get("/api/v1/regions/ca-qc-1", headers=as_admin)).json()
        assert region["pue"] == "1.15"

    async def test_pue_inside_the_range_is_updated(self, client: Client, staff: Staff) -> None:
        as_admin = await signed_in(client, staff.admin)

        response = await client.patch(
            "/api/v1/regions/ca-qc-1", json={"pue": "1.2"}, headers=as_admin
        )

        assert response.status_code == 200, response.text
        assert float(response.json()["pue"]) == pytest.approx(1.2)

    async def test_an_existing_region_code_is_a_409(self, client: Client, staff: Staff) -> None:
        as_admin = await signed_in(client, staff.admin)

        response = await client.post(
            "/api/v1/regions", json={**REGION, "code": "ca-qc-1"}, headers=as_admin
        )

        assert response.status_code == 409
        assert [e["field"] for e in response.json()["errors"]] == ["body.code"]


class TestNodeList:
    async def test_filters_narrow_the_list(self, client: Client, staff: Staff) -> None:
        as_ca = await signed_in(client, staff.ca)

        async def hostnames(**params: str) -> list[str]:
            nodes = await all_pages(client, "/api/v1/nodes", as_ca, **params)
            return [n["hostname"] for n in nodes]

        everything = await hostnames()
        assert len(everything) == 42
        assert everything == sorted(everything)
        sweden = await hostnames(region="se-north-1")
        assert len(sweden) == 12
        assert all(h.startswith("se-") for h in sweden)
        assert await hostnames(gpu_model="h200") == [f"qc-h200-{n:02d}" for n in range(1, 5)]
        assert await hostnames(state="draining") == ["qc-h100-09"]
        assert await hostnames(state="maintenance") == ["qc-h100-10", "us-a100-06"]
        assert await hostnames(hostname="qc-l40s-0") == [f"qc-l40s-{n:02d}" for n in range(1, 7)]
        assert await hostnames(region="ca-qc-1", gpu_model="h100", state="maintenance") == [
            "qc-h100-10"
        ]
        assert await hostnames(hostname="qc_") == []  # "_" is literal, not a wildcard

    async def test_pages_cover_the_fleet_once(self, client: Client, staff: Staff) -> None:
        as_admin = await signed_in(client, staff.admin)

        first = await client.get("/api/v1/nodes", params={"limit": 5}, headers=as_admin)
        walked = await all_pages(client, "/api/v1/nodes", as_admin, limit=5)

        assert len(first.json()["items"]) == 5
        assert first.json()["next_cursor"]
        hostnames = [n["hostname"] for n in walked]
        assert len(hostnames) == len(set(hostnames)) == 42

    async def test_an_unknown_state_filter_is_a_400(self, client: Client, staff: Staff) -> None:
        as_admin = await signed_in(client, staff.admin)

        response = await client.get("/api/v1/nodes", params={"state": "on-fire"}, headers=as_admin)

        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == ["query.state"]

    async def test_a_node_shows_its_gpus(
        self, client: Client, db: AsyncSession, staff: Staff
    ) -> None:
        node = await node_named(db, "se-h100-01")
        as_se = await signed_in(client, staff.se)

        body = (await client.get(f"/api/v1/nodes/{node.id}", headers=as_se)).json()

        assert [g["index"] for g in body["gpus"]] == list(range(8))
        assert {g["nvlink_domain"] for g in body["gpus"]} == {"se-h100-01-nvl"}
        assert all(g["uuid"].startswith("GPU-") for g in body["gpus"])

    async def test_tenant_users_cannot_see_nodes(
        self, client: Client, db: AsyncSession, staff: Staff
    ) -> None:
        node = await node_named(db, "qc-h100-01")
        as_tenant = await signed_in(client, staff.tenant_user)

        for path in ("/api/v1/nodes", f"/api/v1/nodes/{node.id}", "/api/v1/nodes/summary"):
            response = await client.get(path, headers=as_tenant)
            assert response.status_code == 403, path
        assert (await client.get("/api/v1/nodes")).status_code == 401


class TestNodeTransitions:
    async def transition(
        self, client: Client, headers: dict[str, str], node_id: str, to: str, reason: str = "ops"
    ) -> Any:
        return await client.post(
            f"/api/v1/nodes/{node_id}/transitions",
            json={"to": to, "reason": reason},
            headers=headers,
        )

    async def test_a_transition_records_who_why_and_when(
        self, client: Client, db: AsyncSession, staff: Staff, clock: OffsetClock
    ) -> None:
        node = await node_named(db, "qc-h100-01")
        as_ca = await signed_in(client, staff.ca)
        clock.advance(3600)  # the event time comes from the control plane's clock
        expected_at = clock.now()

        response = await self.transition(client, as_ca, node.id, "draining", "fan replacement")

        assert response.status_code == 200, response.text
        assert response.json()["state"] == "draining"
        assert response.json()["allowed_transitions"] == ["available", "maintenance", "retired"]
        events = (await client.get(f"/api/v1/nodes/{node.id}/events", headers=as_ca)).json()
        latest = events["items"][0]
        assert (latest["from_state"], latest["to_state"]) == ("available", "draining")
        assert latest["reason"] == "fan replacement"
        assert latest["actor"] == f"user:{staff.ca.user_id}"
        at = response.json()["state_changed_at"]
        assert latest["at"] == at
        assert abs(_parse(at) - expected_at) < timedelta(minutes=5)

    async def test_every_step_of_a_lifecycle_is_an_event(
        self, client: Client, db: AsyncSession, staff: Staff
    ) -> None:
        node = await node_named(db, "qc-l40s-06")  # still enrolling
        as_admin = await signed_in(client, staff.admin)
        before = await _event_count(db, node.id)
        path = ["burn-in", "available", "draining", "maintenance", "available"]

        for step in path:
            response = await self.transition(client, as_admin, node.id, step, f"to {step}")
            assert response.status_code == 200, response.text

        events = await all_pages(client, f"/api/v1/nodes/{node.id}/events", as_admin, limit=2)
        assert await _event_count(db, node.id) == before + len(path)
        newest_first = [(e["to_state"], e["reason"]) for e in events[: len(path)]]
        assert newest_first == [(s, f"to {s}") for s in reversed(path)]
        assert events[-1]["to_state"] == "enrolling"

    async def test_history_reads_newest_first_even_for_events_made_together(
        self, client: Client, db: AsyncSession, staff: Staff
    ) -> None:
        node = await node_named(db, "qc-h100-09")  # the seed wrote its four events at once
        as_admin = await signed_in(client, staff.admin)

        events = await all_pages(client, f"/api/v1/nodes/{node.id}/events", as_admin)

        assert [e["to_state"] for e in events] == ["draining", "available", "burn-in", "enrolling"]
        assert [e["from_state"] for e in events] == ["available", "burn-in", "enrolling", None]

    async def test_an_invalid_transition_is_a_409_listing_the_allowed_states(
        self, client: Client, db: AsyncSession, staff: Staff
    ) -> None:
        node = await node_named(db, "qc-l40s-06")  # enrolling
        as_admin = await signed_in(client, staff.admin)
        before = await _event_count(db, node.id)

        response = await self.transition(client, as_admin, node.id, "available")

        assert response.status_code == 409
        problem = response.json()
        assert problem["type"] == "/problems/invalid-transition"
        assert "allowed: burn-in, retired" in problem["detail"]
        assert [e["field"] for e in problem["errors"]] == ["body.to"]
        await db.refresh(node)
        assert node.state == "enrolling"
        assert await _event_count(db, node.id) == before

    async def test_a_retired_node_goes_nowhere(
        self, client: Client, db: AsyncSession, staff: Staff
    ) -> None:
        node = await node_named(db, "qc-l40s-06")
        as_admin = await signed_in(client, staff.admin)
        assert (await self.transition(client, as_admin, node.id, "retired")).status_code == 200

        response = await self.transition(client, as_admin, node.id, "burn-in")

        assert response.status_code == 409
        assert "none (retired)" in response.json()["detail"]

    async def test_an_operator_acts_only_in_their_home_jurisdiction(
        self, client: Client, db: AsyncSession, staff: Staff
    ) -> None:
        canadian = await node_named(db, "qc-h100-02")
        swedish = await node_named(db, "se-h100-02")
        as_ca = await signed_in(client, staff.ca)

        home = await self.transition(client, as_ca, canadian.id, "draining")
        abroad = await self.transition(client, as_ca, swedish.id, "draining")

        assert home.status_code == 200
        assert abroad.status_code == 403
        assert "SE" in abroad.json()["detail"]
        await db.refresh(swedish)
        assert swedish.state == "available"

    async def test_an_operator_admin_acts_anywhere(
        self, client: Client, db: AsyncSession, staff: Staff
    ) -> None:
        as_admin = await signed_in(client, staff.admin)

        for hostname in ("qc-h100-03", "se-h100-03", "us-a100-03"):
            node = await node_named(db, hostname)
            response = await self.transition(client, as_admin, node.id, "maintenance")
            assert response.status_code == 200, hostname

    async def test_a_tenant_user_cannot_move_nodes(
        self, client: Client, db: AsyncSession, staff: Staff
    ) -> None:
        node = await node_named(db, "qc-h100-04")
        as_tenant = await signed_in(client, staff.tenant_user)

        response = await self.transition(client, as_tenant, node.id, "draining")

        assert response.status_code == 403
        await db.refresh(node)
        assert node.state == "available"


async def _event_count(db: AsyncSession, node_id: str) -> int:
    count = await db.execute(
        select(func.count()).select_from(NodeEvent).where(NodeEvent.node_id == node_id)
    )
    return int(count.scalar_one())


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
