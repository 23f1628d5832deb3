"""Waste and right-sizing in a real browser: a member opens the waste dashboard, sees the
trend chart and the utilization heatmap drawn, presses Analyse now, applies the advice
(confirming it) and finds the tenancy resized; an operator opens the fleet page and sees
the charts and the stranded capacity table.

The data goes in the way production gets it: the member creates a tenancy through the
API (the server's reconciler brings it up), an operator issues the node's agent
credential, the agent posts samples, the hourly rollup runs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import OffsetClock
from control_plane.db.engine import make_engine
from control_plane.settings import Settings
from control_plane.telemetry.tasks import roll_up_all
from tests.fixtures.capacity import make_shape
from tests.integration.insights.conftest import RATES, Agent, must

pytestmark = [pytest.mark.e2e, pytest.mark.peer_chromium, pytest.mark.slow]

MEMBER = ("member@demo.example", "demo-member-pass")
OPERATOR = ("ops-admin@provider.example", "demo-opsadmin-pass")
HOURS = 30
SETTLE_S = 30.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The served app drives tenancies itself; sessions outlive the hours the test skips."""
    return settings.model_copy(
        update={"reconciler_enabled": True, "session_ttl_seconds": 30 * 86400}
    )


async def api_login(client: httpx.AsyncClient, who: tuple[str, str]) -> dict[str, str]:
    """Headers acting as ``who`` through the API (session cookie and CSRF token)."""
    answer = await client.post("/api/v1/auth/login", json={"email": who[0], "password": who[1]})
    assert answer.status_code == 200, answer.text
    token = client.cookies["cp_session"]
    client.cookies.clear()
    return {"X-CSRF-Token": answer.json()["csrf_token"], "Cookie": f"cp_session={token}"}


async def active(client: httpx.AsyncClient, url: str, auth: dict[str, str]) -> Any:
    """The tenancy at ``url`` once the server's reconciler made it active."""
    import asyncio

    for _ in range(int(SETTLE_S * 5)):
        tenancy = await must(client.get(url, headers=auth))
        if tenancy["state"] == "active":
            return tenancy
        await asyncio.sleep(0.2)
    raise AssertionError(f"tenancy not active: {tenancy['state']}")


@pytest.fixture
async def fleet(
    demo_url: str, db: AsyncSession, clock: OffsetClock, settings: Settings
) -> dict[str, Any]:
    """A 2 x H100 tenancy of the demo org in ca-qc-1, one GPU busy and one idle for 30
    hours as its node's agent reports it, rolled up; a price book; two shapes."""
    await make_shape(db, clock, region="ca-qc-1", name="h100-4", model="h100",
                     gpus_per_node=4, price="16.00")  # fmt: skip
    await make_shape(db, clock, region="ca-qc-1", name="h100-1", model="h100",
                     gpus_per_node=1, price="4.00")  # fmt: skip
    await db.commit()
    async with httpx.AsyncClient(base_url=demo_url, timeout=30) as client:
        operator = await api_login(client, OPERATOR)
        member = await api_login(client, MEMBER)
        book = {"effective_from": (clock.now() - timedelta(days=40)).isoformat(),
                "timezone": "America/Toronto", "rates": RATES}  # fmt: skip
        await must(client.post("/api/v1/regions/ca-qc-1/price-books", json=book,
                               headers=operator), 201)  # fmt: skip
        orgs = await must(client.get("/api/v1/orgs", headers=member))
        org_id = next(o["id"] for o in (orgs.get("items", orgs)) if o["slug"] == "demo")
        body = {"name": "train-waste", "kind": "slurm", "region": "ca-qc-1",
                "gpu_model": "h100", "gpus_per_node": 2}  # fmt: skip
        created = await must(client.post(f"/api/v1/orgs/{org_id}/tenancies", json=body,
                                         headers=member), 201)  # fmt: skip
        url = f"/api/v1/orgs/{org_id}/tenancies/{created['id']}"
        tenancy = await active(client, url, member)
        [allocation] = tenancy["allocations"]
        agent = await Agent.enrol(client, operator, str(allocation["node_id"]))
        clock.advance(HOURS * 3600)
        end = clock.now()
        busy, idle = allocation["gpu_indices"]
        await agent.report(busy, end - timedelta(hours=HOURS - 1), end, util=70, mem_mib=30_000)
        await agent.report(idle, end - timedelta(hours=HOURS - 1), end, util=0, mem_mib=300)
    engine = make_engine(settings.database_url)
    try:
        await roll_up_all(async_sessionmaker(engine, expire_on_commit=False))
    finally:
        await engine.dispose()
    return {"org_id": org_id, "tenancy": tenancy}


@pytest.fixture
def asked() -> list[str]:
    """What the page's confirmation dialogs asked, in order."""
    return []


@pytest.fixture
async def page(browser: Browser, demo_url: str, asked: list[str]) -> AsyncIterator[Page]:
    """A fresh profile that accepts confirmations (and remembers what they asked);
    console errors (CSP refusals too) fail the test."""
    context = await browser.new_context(base_url=demo_url, viewport={"width": 1366, "height": 900})
    opened = await context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    async def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    opened.on("console", on_console)
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("dialog", accept)
    yield opened
    await context.close()
    assert errors == [], errors


async def sign_in(page: Page, who: tuple[str, str]) -> None:
    await page.goto("/login")
    await page.get_by_label("Email address").fill(who[0])
    await page.get_by_label("Password", exact=True).fill(who[1])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()


class TestWasteDashboard:
    async def test_member_reads_the_waste_and_applies_the_advice(
        self, page: Page, asked: list[str], fleet: dict[str, Any], artifacts: Path
    ) -> None:
        await sign_in(page, MEMBER)
        nav = page.get_by_role("navigation", name="Main")
        await nav.get_by_role("link", name="Waste & right-sizing").click()
        heading = page.get_by_role("heading", level=1, name="Waste & right-sizing")
        await expect(heading).to_be_visible()

        await page.get_by_role("button", name="Analyse now").click()
        await expect(page.get_by_test_id("notice")).to_contain_text("Analysis done")
        await expect(page.get_by_test_id("savings-CAD")).to_have_text("2,920.00 CAD")
        await page.wait_for_function(
            "() => window.Chart && Chart.getChart(document.getElementById('chart-waste-cad'))"
        )
        drawn = await page.evaluate(
            "() => Chart.getChart(document.getElementById('chart-waste-cad')).data.datasets"
            ".map(d => [d.label, d.data.reduce((a, b) => a + b, 0)])"
        )
        assert [label for label, _ in drawn] == ["GPU-hours in use", "Idle GPU-hours",
                                                 "Wasted (CAD)"]  # fmt: skip
        assert all(total > 0 for _, total in drawn)
        heatmap = page.locator("canvas#heatmap")
        await expect(heatmap).to_have_attribute("data-drawn", "2")
        box = await heatmap.bounding_box()
        assert box is not None
        assert box["width"] > 600
        assert box["height"] > 40
        painted = await page.evaluate(
            "() => { const c = document.getElementById('heatmap');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 3; i < d.length; i += 4) { if (d[i]) n++; } return n; }"
        )
        assert painted > 1000
        await heatmap.hover(position={"x": box["width"] - 5, "y": 30})
        await expect(page.locator("#heatmap-readout")).to_contain_text("train-waste")
        await page.screenshot(path=str(artifacts / "portal-insights.png"), full_page=True)

        advice = page.get_by_test_id("advice").locator("li.advice")
        await expect(advice).to_have_count(1)
        await expect(advice).to_contain_text("Underused GPUs")
        await advice.locator("summary", has_text="Evidence").click()
        await advice.get_by_role("button", name=re.compile("^Apply")).click()
        await expect(page.get_by_test_id("notice")).to_contain_text("Advice applied.")
        assert any("train-waste" in question for question in asked)
        await expect(page.get_by_text("No open advice.")).to_be_visible()

        await page.get_by_test_id("notice").get_by_role("link", name="train-waste").click()
        lead = page.locator(".page-header__lead")
        await expect(lead).to_contain_text("1 \u00d7 H100", timeout=SETTLE_S * 1000)


class TestFleetPage:
    async def test_operator_sees_the_fleet_charts_and_stranded_capacity(
        self, page: Page, fleet: dict[str, Any], artifacts: Path
    ) -> None:
        await sign_in(page, OPERATOR)
        nav = page.get_by_role("navigation", name="Main")
        await nav.get_by_role("link", name="Fleet utilization").click()
        heading = page.get_by_role("heading", level=1, name="Fleet utilization")
        await expect(heading).to_be_visible()
        region = page.get_by_test_id("fleet-ca-qc-1")
        await expect(region).to_be_visible()
        for chart in ("chart-fleet-util-ca-qc-1", "chart-fleet-power-ca-qc-1"):
            await page.wait_for_function(
                f"() => window.Chart && Chart.getChart(document.getElementById('{chart}'))"
            )
        util = await page.evaluate(
            "() => Chart.getChart(document.getElementById('chart-fleet-util-ca-qc-1'))"
            ".data.datasets.map(d => d.label)"
        )
        assert util == ["Mean utilization (%)", "GPUs allocated", "GPUs reporting"]
        stranded = page.get_by_test_id("stranded-ca-qc-1")
        four = stranded.locator("tbody tr", has_text="h100-4")
        await expect(four).to_have_count(1)
        # The test's tenancy holds 2 of a node's H100s: the 2 left cannot host a 4-GPU shape.
        await expect(four.locator("td").last).not_to_have_text("0")
        await page.screenshot(path=str(artifacts / "portal-fleet.png"), full_page=True)
