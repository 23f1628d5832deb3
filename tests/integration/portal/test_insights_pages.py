"""The waste dashboard and the fleet page, over data built the real way: node agents post
samples, the hourly rollup runs, the analysis prices advice with the organization's book.
People act on advice through the page's forms (CSRF enforced); auditors only read; other
organizations see nothing; only operators open the fleet page."""

# The insights suites' fixtures are imported below, and tests name them as parameters.
# ruff: noqa: F811

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.capacity import make_shape
from tests.fixtures.factories import Tenant, make_org, signed_in
from tests.integration.insights.conftest import (  # noqa: F401 (fixtures)
    Agent,
    Client,
    book,
    customer,
    member,
    must,
    nodes,
    operator,
    reconciler,
    roll_up,
    settings,
)
from tests.integration.portal.test_pages import HTML, chart_data, text_of

HOURS = 30
SHOW = "/insights"


@pytest.fixture
async def other(db: AsyncSession) -> Tenant:
    tenant = await make_org(db, roles=(TenantRole.OWNER,))
    await db.commit()
    return tenant


async def as_role(client: Client, org: Tenant, role: TenantRole) -> dict[str, str]:
    return {**await signed_in(client, org.accounts[role]), **HTML}


def form_post(auth: dict[str, str], **fields: str) -> dict[str, Any]:
    return {"data": {"_csrf": auth["X-CSRF-Token"], **fields}, "headers": auth,
            "follow_redirects": False}  # fmt: skip


async def history(
    app: Litestar, client: Client, clock: OffsetClock, reconciler: Reconciler, org: Tenant,
    member: dict[str, str], operator: dict[str, str], node: str, utils: list[int],
) -> dict[str, Any]:  # fmt: skip
    """An active Slurm tenancy of ``len(utils)`` H100s whose GPUs ran at ``utils`` for
    ``HOURS`` hours (as the node agent reports it), rolled up."""
    agent = await Agent.enrol(client, operator, node)
    body = {"name": f"train-{len(utils)}", "kind": "slurm", "region": "ca-qc-1",
            "gpu_model": "h100", "gpus_per_node": len(utils)}  # fmt: skip
    url = f"/api/v1/orgs/{org.org_id}/tenancies"
    tenancy = await must(client.post(url, json=body, headers=member), 201)
    await reconciler.converge()
    clock.advance(HOURS * 3600)
    end = clock.now()
    for index, util in zip(tenancy["allocations"][0]["gpu_indices"], utils, strict=True):
        busy = util > 0
        await agent.report(index, end - timedelta(hours=HOURS - 1), end, util=util,
                           mem_mib=30_000 if busy else 300, procs=1 if busy else 0)  # fmt: skip
    await roll_up(app)
    return dict(tenancy)


async def analyse(client: Client, auth: dict[str, str]) -> None:
    """Press Analyse now."""
    answer = await client.post(f"{SHOW}/analyse", **form_post(auth))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/insights?done=analysed"


def advice_ids(page: str) -> list[str]:
    return re.findall(r'data-testid="advice-([A-Za-z0-9_]+)"', page)


def heatmap_of(page: str) -> Any:
    match = re.search(r'<script type="application/json" id="heatmap-data">(.*?)</script>', page)
    assert match, "no heatmap"
    return json.loads(match.group(1))


@pytest.fixture
async def idle(
    app: Litestar, client: Client, clock: OffsetClock, reconciler: Reconciler, customer: Tenant,
    member: dict[str, str], operator: dict[str, str], nodes: dict[str, str], book: Any,
) -> dict[str, Any]:  # fmt: skip
    """One H100 held for 30 hours with nothing on it, analysed: advice to release it."""
    tenancy = await history(app, client, clock, reconciler, customer, member, operator,
                            nodes["h100"], [0])  # fmt: skip
    await analyse(client, {**member, **HTML})
    return tenancy


class TestDashboard:
    async def test_shows_what_idle_gpus_cost_the_heatmap_and_the_advice(
        self, client: Client, customer: Tenant, idle: dict[str, Any]
    ) -> None:
        member = await as_role(client, customer, TenantRole.MEMBER)

        page = await client.get(SHOW, headers=member)

        assert page.status_code == 200, page.text
        assert 'href="/insights" aria-current="page"' in page.text
        # One H100 given back: 4.00 CAD an hour for 730 hours a month, from the book.
        savings = re.search(r'data-testid="savings-CAD">([^<]+)<', page.text)
        assert savings
        assert savings.group(1) == "2,920.00 CAD"
        trend = chart_data(page.text, "chart-waste-cad")
        assert [s["label"] for s in trend["series"]] == [
            "GPU-hours in use", "Idle GPU-hours", "Wasted (CAD)"]  # fmt: skip
        assert sum(trend["series"][1]["values"]) >= HOURS - 2
        assert sum(trend["series"][2]["values"]) > 0
        heat = heatmap_of(page.text)
        [row] = heat["rows"]
        assert row["tenancy"] == "train-1"
        assert len(row["values"]) == 7 * 24
        assert {v for v in row["values"] if v is not None} == {0.0}
        [rec_id] = advice_ids(page.text)
        advice = text_of(page.text.split(f'data-testid="advice-{rec_id}"')[1].split("</li>")[0])
        assert "Nothing running" in advice
        assert "2,920.00 CAD / month" in advice
        assert "Confidence" in advice
        assert "kWh / month" in advice
        assert f'href="/tenancies/{idle["id"]}"' in page.text
        assert f'action="/insights/{rec_id}/apply" data-confirm="' in page.text
        assert "cannot be undone" in page.text
        assert 'action="/insights/analyse"' in page.text

    async def test_without_telemetry_the_page_explains_how_data_arrives(
        self, client: Client, customer: Tenant
    ) -> None:
        member = await as_role(client, customer, TenantRole.MEMBER)

        page = await client.get(SHOW, headers=member)

        assert page.status_code == 200, page.text
        text = text_of(page.text)
        assert "No GPU telemetry in the last 7 days." in text
        assert "node agent" in text
        assert "rolled up every hour" in text
        assert "No open advice." in text
        assert "No waste figures yet." in text
        assert 'id="heatmap"' not in page.text


class TestActingOnAdvice:
    async def test_apply_through_the_form_resizes_the_tenancy(
        self, app: Litestar, client: Client, clock: OffsetClock, reconciler: Reconciler,
        customer: Tenant, member: dict[str, str], operator: dict[str, str],
        nodes: dict[str, str], book: Any,
    ) -> None:  # fmt: skip
        tenancy = await history(app, client, clock, reconciler, customer, member, operator,
                                nodes["h100"], [70, 0])  # fmt: skip
        person = await as_role(client, customer, TenantRole.MEMBER)
        await analyse(client, person)
        [rec_id] = advice_ids((await client.get(SHOW, headers=person)).text)

        applied = await client.post(f"{SHOW}/{rec_id}/apply", **form_post(person))
        await reconciler.converge()
        after = await must(client.get(f"/api/v1/orgs/{customer.org_id}/tenancies/"
                                      f"{tenancy['id']}", headers=member))  # fmt: skip
        page = await client.get(applied.headers["location"], headers=person)
        again = await client.post(f"{SHOW}/{rec_id}/apply", **form_post(person))

        assert applied.status_code == 303, applied.text
        assert applied.headers["location"] == f"/insights?done=applied&rec={rec_id}"
        assert after["gpus_per_node"] == 1
        assert "Advice applied." in text_of(page.text)
        assert f'<a href="/tenancies/{tenancy["id"]}">train-2</a>' in page.text
        assert advice_ids(page.text) == []
        # Applying twice is a conflict, said on the page (not a 500).
        assert again.status_code == 409
        assert "That could not be done: Only open advice can be applied" in text_of(again.text)

    async def test_snooze_then_dismiss_with_a_reason_and_filter_by_state(
        self, client: Client, customer: Tenant, idle: dict[str, Any]
    ) -> None:
        person = await as_role(client, customer, TenantRole.OWNER)
        [rec_id] = advice_ids((await client.get(SHOW, headers=person)).text)

        snoozed = await client.post(f"{SHOW}/{rec_id}/snooze", **form_post(person, days="7"))
        open_after = await client.get(snoozed.headers["location"], headers=person)
        listed = await client.get(f"{SHOW}?show=snoozed", headers=person)
        dismissed = await client.post(
            f"{SHOW}/{rec_id}/dismiss", **form_post(person, reason="batch job", show="snoozed")
        )
        gone = await client.get(f"{SHOW}?show=dismissed", headers=person)
        bad_days = await client.post(f"{SHOW}/{rec_id}/snooze", **form_post(person, days="999"))

        assert snoozed.status_code == 303
        assert "Advice snoozed" in text_of(open_after.text)
        assert advice_ids(open_after.text) == []
        assert advice_ids(listed.text) == [rec_id]
        assert "Snoozed until" in listed.text
        assert dismissed.status_code == 303
        assert dismissed.headers["location"] == "/insights?done=dismissed&show=snoozed"
        assert advice_ids(gone.text) == [rec_id]
        assert "batch job" in text_of(gone.text)
        assert bad_days.status_code == 400

    async def test_a_form_without_the_csrf_token_is_refused(
        self, client: Client, customer: Tenant, idle: dict[str, Any]
    ) -> None:
        person = await as_role(client, customer, TenantRole.MEMBER)
        [rec_id] = advice_ids((await client.get(SHOW, headers=person)).text)
        no_token = {k: v for k, v in person.items() if k != "X-CSRF-Token"}

        refused = await client.post(
            f"{SHOW}/{rec_id}/apply", data={}, headers=no_token, follow_redirects=False
        )
        page = await client.get(SHOW, headers=person)

        assert refused.status_code == 403
        assert advice_ids(page.text) == [rec_id]


class TestWhoSeesWhat:
    async def test_the_auditor_reads_but_gets_no_buttons_and_a_forged_post_is_refused(
        self, client: Client, customer: Tenant, idle: dict[str, Any]
    ) -> None:
        auditor = await as_role(client, customer, TenantRole.AUDITOR)

        page = await client.get(SHOW, headers=auditor)
        [rec_id] = advice_ids(page.text)
        forged = await client.post(f"{SHOW}/{rec_id}/apply", **form_post(auditor))
        analysed = await client.post(f"{SHOW}/analyse", **form_post(auditor))

        assert page.status_code == 200
        assert "2,920.00 CAD" in page.text
        assert "/apply" not in page.text
        assert "/dismiss" not in page.text
        assert 'action="/insights/analyse"' not in page.text
        assert forged.status_code == 403
        assert analysed.status_code == 403

    async def test_another_organization_sees_none_of_it(
        self, client: Client, other: Tenant, idle: dict[str, Any]
    ) -> None:
        stranger = await as_role(client, other, TenantRole.OWNER)
        owner_page = await client.get(SHOW, headers=stranger)
        assert advice_ids(owner_page.text) == []
        assert "2,920.00" not in owner_page.text
        assert "train-1" not in owner_page.text

    async def test_another_organization_cannot_act_on_the_advice(
        self, client: Client, customer: Tenant, other: Tenant, idle: dict[str, Any]
    ) -> None:
        person = await as_role(client, customer, TenantRole.MEMBER)
        [rec_id] = advice_ids((await client.get(SHOW, headers=person)).text)
        stranger = await as_role(client, other, TenantRole.OWNER)

        refused = await client.post(f"{SHOW}/{rec_id}/dismiss", **form_post(stranger))
        still = await client.get(SHOW, headers=person)

        assert refused.status_code == 404
        assert advice_ids(still.text) == [rec_id]


class TestFleetPage:
    async def test_operators_see_regions_charts_and_stranded_capacity(
        self, client: Client, db: AsyncSession, clock: OffsetClock, operator: dict[str, str],
        idle: dict[str, Any],
    ) -> None:  # fmt: skip
        await make_shape(db, clock, region="ca-qc-1", name="h100-4", model="h100",
                         gpus_per_node=4, price="16.00")  # fmt: skip
        await make_shape(db, clock, region="ca-qc-1", name="h100-1", model="h100",
                         gpus_per_node=1, price="4.00")  # fmt: skip
        await db.commit()

        page = await client.get("/operator/fleet", headers={**operator, **HTML})

        assert page.status_code == 200, page.text
        assert 'href="/operator/fleet" aria-current="page"' in page.text
        assert 'data-testid="fleet-ca-qc-1"' in page.text
        util = chart_data(page.text, "chart-fleet-util-ca-qc-1")
        assert [s["label"] for s in util["series"]] == [
            "Mean utilization (%)", "GPUs allocated", "GPUs reporting"]  # fmt: skip
        assert max(util["series"][1]["values"]) >= 1
        power = chart_data(page.text, "chart-fleet-power-ca-qc-1")
        assert max(power["series"][0]["values"]) > 0
        table = page.text.split('data-testid="stranded-ca-qc-1"')[1].split("</table>")[0]
        rows = re.findall(r"<tr[^>]*>\s*<th scope=\"row\">([^<]+)</th>", table)
        assert sorted(rows) == ["h100-1", "h100-4"]
        # 3 H100s free on the node the idle tenancy holds one of: a 4-GPU shape fits none.
        four = text_of(table.split("h100-4")[1].split("</tr>")[0]).split()
        assert four[-3:] == ["0", "0", "3"]
        text = text_of(page.text)
        assert "Energy at the facility" in text
        assert "CO2e" in text

    async def test_tenants_are_refused(self, client: Client, customer: Tenant) -> None:
        owner = await as_role(client, customer, TenantRole.OWNER)

        page = await client.get("/operator/fleet", headers=owner)
        dashboard = await client.get("/dashboard", headers=owner)

        assert page.status_code == 403
        assert 'href="/operator/fleet"' not in dashboard.text
        assert 'href="/insights"' in dashboard.text
