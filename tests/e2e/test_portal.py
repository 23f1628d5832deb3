"""The portal in a real browser: uvicorn on loopback, Debian Chromium through Playwright."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.peer_chromium, pytest.mark.slow]

OPS_ADMIN = ("ops-admin@provider.example", "demo-opsadmin-pass")
OWNER = ("owner@demo.example", "demo-owner-pass")
WIDE = {"width": 1366, "height": 900}
NARROW = {"width": 390, "height": 844}


@pytest.fixture
async def page(browser: Browser, demo_url: str) -> AsyncIterator[Page]:
    """A fresh browser profile; console errors (CSP violations included) fail the test."""
    context = await browser.new_context(base_url=demo_url, viewport=WIDE)
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=demo_url)
    opened = await context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    opened.on("console", on_console)
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    await context.close()
    assert errors == [], errors


async def sign_in(page: Page, email: str, password: str) -> None:
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Sign in").click()


class TestOperatorFlow:
    async def test_operator_signs_in_filters_inventory_drains_a_node_and_signs_out(
        self, page: Page, artifacts: Path
    ) -> None:
        await page.goto("/dashboard")
        await expect(page).to_have_url(re.compile(r"/login\?next=%2Fdashboard$"))
        await sign_in(page, *OPS_ADMIN)

        await expect(page.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()
        await expect(page.get_by_role("heading", name="Fleet")).to_be_visible()
        nodes_stat = page.locator(".stat", has_text="Nodes").first
        await expect(nodes_stat).to_contain_text("42")
        # The vendored Chart.js ran under the script-src 'self' policy and drew both charts.
        await page.wait_for_function(
            "() => ['chart-gpus', 'chart-changes'].every("
            "id => window.Chart && Chart.getChart(document.getElementById(id)))"
        )

        await (
            page.get_by_role("navigation", name="Main")
            .get_by_role("link", name="Inventory")
            .click()
        )
        await expect(page.get_by_role("heading", level=1, name="Inventory")).to_be_visible()
        await page.get_by_label("Region", exact=True).select_option("se-north-1")
        await page.get_by_role("button", name="Apply filters").click()
        await expect(page).to_have_url(re.compile(r"region=se-north-1"))
        rows = page.get_by_role("region", name="Nodes").locator("tbody tr")
        await expect(rows).to_have_count(12)
        regions = await rows.locator("td:nth-child(2)").all_inner_texts()
        assert set(regions) == {"se-north-1"}
        await page.wait_for_function(
            "() => window.Chart && Chart.getChart(document.getElementById('chart-gpus'))"
        )
        await page.screenshot(path=str(artifacts / "portal-inventory.png"), full_page=True)

        await page.set_viewport_size(NARROW)
        nav = page.get_by_role("navigation", name="Main")
        await expect(nav).to_be_hidden()
        await page.get_by_role("button", name="Menu").click()
        await expect(nav).to_be_visible()
        await page.get_by_role("button", name="Menu").click()
        await page.screenshot(path=str(artifacts / "portal-inventory-narrow.png"), full_page=True)
        await page.set_viewport_size(WIDE)

        await page.get_by_role("link", name="se-h100-01").click()
        await expect(page.get_by_role("heading", level=1, name="se-h100-01")).to_be_visible()
        await expect(page.get_by_role("heading", name="GPUs")).to_be_visible()
        await page.get_by_label("Reason").fill("CHG-1042 firmware update")
        await page.get_by_role("button", name="Drain").click()
        await expect(page.get_by_role("status")).to_contain_text("The node is now draining.")
        await expect(page.locator(".timeline__item").first).to_contain_text(
            "CHG-1042 firmware update"
        )
        await page.screenshot(path=str(artifacts / "portal-node.png"), full_page=True)

        await page.get_by_role("button", name="Sign out").click()
        await expect(page).to_have_url(re.compile(r"/login\?signed_out=1$"))
        await expect(page.get_by_role("status")).to_contain_text("You have signed out.")
        await page.goto("/operator/inventory")
        await expect(page).to_have_url(re.compile(r"/login\?next="))


class TestCustomerFlow:
    async def test_owner_creates_a_project_and_sees_a_new_keys_secret_once(
        self, page: Page, artifacts: Path
    ) -> None:
        await page.goto("/")
        await sign_in(page, *OWNER)
        await expect(page.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()
        await expect(page.get_by_role("combobox", name="Organization")).to_have_value(
            re.compile(r"^org_")
        )
        await expect(page.get_by_role("link", name="Inventory")).to_have_count(0)
        await page.screenshot(path=str(artifacts / "portal-dashboard-owner.png"), full_page=True)

        await page.get_by_role("link", name="Projects", exact=True).click()
        await page.get_by_label("Name", exact=True).fill("Vision models")
        await page.get_by_label("Short name (slug)").fill("vision-models")
        await page.get_by_role("button", name="Create project").click()
        await expect(page.get_by_role("heading", level=1, name="Vision models")).to_be_visible()

        await page.get_by_label("Key name").fill("training pipeline")
        await page.get_by_role("button", name="Create key").click()
        await expect(page.get_by_role("heading", level=1, name="API key created")).to_be_visible()
        secret = (await page.locator("#api-key-secret").inner_text()).strip()
        assert secret.startswith("cpk_")
        await page.get_by_role("button", name="Copy").click()
        await expect(page.get_by_role("status")).to_contain_text("on your clipboard")
        assert await page.evaluate("navigator.clipboard.readText()") == secret
        await page.screenshot(path=str(artifacts / "portal-api-key.png"), full_page=True)

        await page.get_by_role("link", name="Done, back to Vision models").click()
        keys = page.get_by_role("region", name="API keys").locator("tbody tr")
        await expect(keys).to_have_count(1)
        await expect(keys.first).to_contain_text("training pipeline")
        await expect(keys.first).to_contain_text("Active")
        assert secret not in await page.content()
