"""An auditor in a real browser: checks the ledger, filters it, downloads and verifies a bundle."""

from __future__ import annotations

import re
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from control_plane.cli.main import cli

pytestmark = [pytest.mark.e2e, pytest.mark.peer_chromium, pytest.mark.slow]

OWNER = ("owner@demo.example", "demo-owner-pass")
AUDITOR = ("auditor@demo.example", "demo-auditor-pass")


@pytest.fixture
async def page(browser: Browser, demo_url: str) -> AsyncIterator[Page]:
    context = await browser.new_context(
        base_url=demo_url, viewport={"width": 1366, "height": 900}, accept_downloads=True
    )
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
    await page.goto("/login")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login"))


class TestAuditorFlow:
    async def test_a_change_reaches_the_ledger_and_the_bundle_verifies_offline(
        self, page: Page, tmp_path: Path, artifacts: Path
    ) -> None:
        # The owner changes something in the portal...
        await sign_in(page, *OWNER)
        await page.goto("/projects")
        await page.get_by_label("Name", exact=True).fill("Ledger proof")
        await page.get_by_label("Short name (slug)").fill("ledger-proof")
        await page.get_by_role("button", name="Create project").click()
        await expect(page.get_by_role("heading", level=1, name="Ledger proof")).to_be_visible()
        await sign_out(page)

        # ...and the auditor finds it in the ledger, sealed and intact.
        await sign_in(page, *AUDITOR)
        await (
            page.get_by_role("navigation", name="Main")
            .get_by_role("link", name="Audit ledger")
            .click()
        )
        await expect(page.get_by_role("heading", level=1, name="Audit ledger")).to_be_visible()
        await expect(page.get_by_test_id("chain-status")).to_contain_text("re-verified")
        await page.wait_for_function(
            "() => window.Chart && Chart.getChart(document.getElementById('chart-audit'))"
        )
        await page.get_by_label("Action starts with").fill("portal.project_create")
        await page.get_by_role("button", name="Apply filters").click()
        rows = page.get_by_test_id("audit-entries").locator("tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("Success")
        await page.screenshot(path=str(artifacts / "portal-audit.png"), full_page=True)

        async with page.expect_download() as download_info:
            await page.get_by_role("button", name="Download bundle (.zip)").click()
        download = await download_info.value
        archive = tmp_path / "bundle.zip"
        await download.save_as(archive)
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(tmp_path / "bundle")

        result = CliRunner().invoke(cli, ["audit", "verify", str(tmp_path / "bundle")])
        assert result.exit_code == 0, result.output
        assert "portal.project_create" in (tmp_path / "bundle" / "entries.jsonl").read_text()
