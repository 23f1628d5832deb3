"""From the node agent's samples to advice a customer acts on: the real ingest API, the
rollup, the analysis priced with the organization's own price book, and applying advice
through the normal resize, release and schedule paths (audited)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.models import AuditEntryRow as AuditEntry
from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.factories import Tenant, bearer, make_api_key
from tests.integration.insights.conftest import Agent, Client, must, roll_up

HOURS = 30


async def tenancy_with_history(
    client: Client, clock: OffsetClock, reconciler: Reconciler, customer: Tenant,
    member: dict[str, str], gpus: int, name: str,
) -> dict[str, Any]:  # fmt: skip
    """An active Slurm tenancy of ``gpus`` H100s, then ``HOURS`` hours pass."""
    url = f"/api/v1/orgs/{customer.org_id}/tenancies"
    body = {"name": name, "kind": "slurm", "region": "ca-qc-1", "gpu_model": "h100",
            "gpus_per_node": gpus}  # fmt: skip
    tenancy = await must(client.post(url, json=body, headers=member), 201)
    await reconciler.converge()
    clock.advance(HOURS * 3600)
    return tenancy


def indices(tenancy: dict[str, Any]) -> list[int]:
    return list(tenancy["allocations"][0]["gpu_indices"])


async def analyse(client: Client, customer: Tenant, member: dict[str, str]) -> list[Any]:
    base = f"/api/v1/orgs/{customer.org_id}/recommendations"
    await must(client.post(f"{base}/analyze", headers=member))
    return list(await must(client.get(base, headers=member)))


class TestAdvice:
    async def test_half_idle_gpus_give_shrink_advice_priced_from_the_book(
        self, app: Litestar, client: Client, clock: OffsetClock, reconciler: Reconciler,
        customer: Tenant, member: dict[str, str], operator: dict[str, str],
        nodes: dict[str, str], book: Any, db: AsyncSession,
    ) -> None:  # fmt: skip
        agent = await Agent.enrol(client, operator, nodes["h100"])
        tenancy = await tenancy_with_history(client, clock, reconciler, customer, member, 2, "t2")
        busy, idle = indices(tenancy)
        end = clock.now()
        start = end - timedelta(hours=HOURS - 1)
        await agent.report(busy, start, end, util=70, mem_mib=30_000)
        await agent.report(idle, start, end, util=0, mem_mib=300)
        await roll_up(app)

        [advice] = await analyse(client, customer, member)

        assert advice["rule"] == "underused_multi_gpu"
        assert advice["target_id"] == tenancy["id"]
        assert advice["currency"] == "CAD"
        # One H100 given back: 4.00 CAD an hour for 730 hours a month.
        assert Decimal(advice["monthly_savings"]) == Decimal("2920.00")
        assert advice["action"]["kind"] == "resize"
        assert advice["action"]["params"]["gpus_per_node"] == 1
        assert Decimal(advice["energy_kwh_month"]) > 0
        assert advice["evidence"]

    async def test_applying_the_advice_resizes_the_tenancy_and_is_audited(
        self, app: Litestar, client: Client, clock: OffsetClock, reconciler: Reconciler,
        customer: Tenant, member: dict[str, str], operator: dict[str, str],
        nodes: dict[str, str], book: Any, db: AsyncSession,
    ) -> None:  # fmt: skip
        agent = await Agent.enrol(client, operator, nodes["h100"])
        tenancy = await tenancy_with_history(client, clock, reconciler, customer, member, 2, "t3")
        busy, idle = indices(tenancy)
        end = clock.now()
        await agent.report(busy, end - timedelta(hours=HOURS - 1), end, util=70, mem_mib=30_000)
        await agent.report(idle, end - timedelta(hours=HOURS - 1), end, util=0, mem_mib=300)
        await roll_up(app)
        [advice] = await analyse(client, customer, member)
        base = f"/api/v1/orgs/{customer.org_id}"

        applied = await must(client.post(
            f"{base}/recommendations/{advice['id']}/apply", headers=member))  # fmt: skip
        await reconciler.converge()
        after = await must(client.get(f"{base}/tenancies/{tenancy['id']}", headers=member))
        again = await client.post(f"{base}/recommendations/{advice['id']}/apply", headers=member)

        assert applied["state"] == "applied"
        assert applied["note"].startswith("applied:")
        assert after["gpus_per_node"] == 1
        assert after["state"] == "active"
        assert again.status_code == 409
        entries = (await db.execute(select(AuditEntry).where(
            AuditEntry.action == "insights.apply_recommendation"))).scalars().all()  # fmt: skip
        assert [e.outcome for e in entries] == ["success", "rejected"]

    async def test_idle_gpus_are_released_by_one_click_and_show_as_waste(
        self, app: Litestar, client: Client, clock: OffsetClock, reconciler: Reconciler,
        customer: Tenant, member: dict[str, str], operator: dict[str, str],
        nodes: dict[str, str], book: Any,
    ) -> None:  # fmt: skip
        agent = await Agent.enrol(client, operator, nodes["h100"])
        tenancy = await tenancy_with_history(client, clock, reconciler, customer, member, 1, "t4")
        end = clock.now()
        [gpu] = indices(tenancy)
        await agent.report(gpu, end - timedelta(hours=HOURS - 1), end, util=1, mem_mib=20_000)
        await roll_up(app)

        [advice] = await analyse(client, customer, member)
        waste = await must(client.get(f"/api/v1/orgs/{customer.org_id}/waste", headers=member))
        await must(client.post(f"/api/v1/orgs/{customer.org_id}/recommendations/"
                               f"{advice['id']}/apply", headers=member))  # fmt: skip
        after = await must(client.get(f"/api/v1/orgs/{customer.org_id}/tenancies/"
                                      f"{tenancy['id']}", headers=member))  # fmt: skip

        assert advice["rule"] == "idle_gpus"
        assert advice["action"]["kind"] == "release"
        assert Decimal(advice["monthly_savings"]) == Decimal("2920.00")
        [cad] = waste["currencies"]
        assert cad["currency"] == "CAD"
        assert cad["idle_gpu_hours"] >= HOURS - 2
        # Idle hours at the customer's own price (4.00 CAD per H100-hour).
        assert Decimal(cad["wasted"]) == Decimal(str(cad["idle_gpu_hours"])) * 4
        assert Decimal(cad["open_savings_per_month"]) == Decimal("2920.00")
        assert after["state"] in ("releasing", "cleaning", "released")

    async def test_a_project_key_sees_its_projects_waste_only(
        self, app: Litestar, client: Client, clock: OffsetClock, reconciler: Reconciler,
        customer: Tenant, member: dict[str, str], operator: dict[str, str],
        nodes: dict[str, str], book: Any, db: AsyncSession,
    ) -> None:  # fmt: skip
        agent = await Agent.enrol(client, operator, nodes["h100"])
        key = bearer(await make_api_key(db, customer, TenantRole.MEMBER))
        await db.commit()
        url = f"/api/v1/orgs/{customer.org_id}/tenancies"
        body = {"kind": "slurm", "region": "ca-qc-1", "gpu_model": "h100", "gpus_per_node": 1}
        mine = await must(client.post(url, json={**body, "name": "p1",
                                                 "project_id": customer.project_id},
                                       headers=member), 201)  # fmt: skip
        other = await must(client.post(url, json={**body, "name": "p2"}, headers=member), 201)
        await reconciler.converge()
        clock.advance(HOURS * 3600)
        end = clock.now()
        for t in (mine, other):
            [gpu] = indices(t)
            await agent.report(gpu, end - timedelta(hours=HOURS - 1), end, util=0, mem_mib=9000)
        await roll_up(app)
        await analyse(client, customer, member)
        waste = f"/api/v1/orgs/{customer.org_id}/waste"

        org_wide = await must(client.get(waste, headers=member))
        project = await must(client.get(waste, headers=key))
        advice = await must(client.get(f"/api/v1/orgs/{customer.org_id}/recommendations",
                                       headers=key))  # fmt: skip

        [org_cad], [project_cad] = org_wide["currencies"], project["currencies"]
        assert org_cad["idle_gpu_hours"] == 2 * project_cad["idle_gpu_hours"]
        assert Decimal(org_cad["wasted"]) == 2 * Decimal(project_cad["wasted"])
        assert [a["target_id"] for a in advice] == [mine["id"]]

    async def test_dismissed_advice_stays_dismissed_and_snoozed_advice_comes_back(
        self, app: Litestar, client: Client, clock: OffsetClock, reconciler: Reconciler,
        customer: Tenant, member: dict[str, str], operator: dict[str, str],
        nodes: dict[str, str], book: Any, auditor: dict[str, str],
    ) -> None:  # fmt: skip
        agent = await Agent.enrol(client, operator, nodes["h100"])
        tenancy = await tenancy_with_history(client, clock, reconciler, customer, member, 1, "t5")
        end = clock.now()
        [gpu] = indices(tenancy)
        await agent.report(gpu, end - timedelta(hours=HOURS - 1), end, util=0, mem_mib=100,
                           procs=0)  # fmt: skip
        await roll_up(app)
        base = f"/api/v1/orgs/{customer.org_id}/recommendations"
        [advice] = await analyse(client, customer, member)

        refused = await client.post(f"{base}/{advice['id']}/snooze", json={"days": 2},
                                    headers=auditor)  # fmt: skip
        snoozed = await must(client.post(f"{base}/{advice['id']}/snooze", json={"days": 2},
                                         headers=member))  # fmt: skip
        hidden = await analyse(client, customer, member)
        clock.advance(3 * 86400)
        await agent.report(gpu, clock.now() - timedelta(hours=HOURS - 1), clock.now(), util=0,
                           mem_mib=100, procs=0)  # fmt: skip
        await roll_up(app)
        [back] = await analyse(client, customer, member)
        reason = {"reason": "reserved for a demo"}
        dismissed = await must(client.post(f"{base}/{back['id']}/dismiss", json=reason,
                                           headers=member))  # fmt: skip
        still = await analyse(client, customer, member)

        assert advice["rule"] == "empty_lease"
        assert refused.status_code == 403
        assert snoozed["state"] == "snoozed"
        assert hidden == []
        assert back["id"] == advice["id"]
        assert back["state"] == "open"
        assert dismissed["state"] == "dismissed"
        assert dismissed["note"] == "reserved for a demo"
        assert still == []

    async def test_no_price_book_no_advice(
        self, app: Litestar, client: Client, clock: OffsetClock, reconciler: Reconciler,
        customer: Tenant, member: dict[str, str], operator: dict[str, str],
        nodes: dict[str, str],
    ) -> None:  # fmt: skip
        agent = await Agent.enrol(client, operator, nodes["h100"])
        tenancy = await tenancy_with_history(client, clock, reconciler, customer, member, 1, "t6")
        end = clock.now()
        [gpu] = indices(tenancy)
        await agent.report(gpu, end - timedelta(hours=HOURS - 1), end, util=0, mem_mib=100)
        await roll_up(app)
        base = f"/api/v1/orgs/{customer.org_id}/recommendations"

        result = await must(client.post(f"{base}/analyze", headers=member))

        assert (result["findings"], result["unpriced"]) == (0, 1)
