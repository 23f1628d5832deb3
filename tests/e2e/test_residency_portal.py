"""Residency in a real browser: an admin changes the policy after a preview, an auditor
downloads the signed report."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.peer_chromium, pytest.mark.slow]

OWNER = ("owner@demo.example", "demo-owner-pass")
AUDITOR = ("auditor@demo.example", "demo-auditor-pass")


@pytest.fixture
async def page(browser: Browser, demo_url: str) -> AsyncIterator[Page]:
    """A fresh browser profile; console errors (CSP violations included) fail the test."""
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
    await expect(page.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()


class TestResidencyFlow:
    async def test_admin_previews_and_forces_a_change_then_auditor_downloads_the_report(
        self, page: Page, artifacts: Path
    ) -> None:
        await sign_in(page, *OWNER)
        await (
            page.get_by_role("navigation", name="Main")
            .get_by_role("link", name="Residency")
            .click()
        )
        await expect(page.get_by_role("heading", level=1, name="Residency policy")).to_be_visible()
        await expect(page.locator(".props").first).to_contain_text("Canada and EU")

        # The demo's ledger lives in ca-qc-1: the EU boundary would leave it outside.
        await page.get_by_label("Start from").select_option("eu-data-boundary")
        await page.get_by_role("button", name="Preview what this change affects").click()
        preview = page.get_by_role("region", name="Resources under the proposed policy")
        await expect(preview).to_contain_text("ca-qc-1")
        await expect(page.get_by_text("Nothing was saved.")).to_be_visible()
        await page.screenshot(path=str(artifacts / "portal-residency-preview.png"), full_page=True)

        await page.get_by_label("Save anyway and flag the resources that fall outside").check()
        await page.get_by_role("button", name="Save new version").click()
        await expect(page.get_by_role("status")).to_contain_text(
            "Version 2 of the residency policy is in force."
        )
        await expect(page.locator(".props").first).to_contain_text("EU data boundary")
        history = page.get_by_role("region", name="Policy versions")
        await expect(history.locator("tbody tr")).to_have_count(2)
        await page.get_by_role("button", name="Sign out").click()

        await sign_in(page, *AUDITOR)
        await page.goto("/residency")
        await expect(page.get_by_role("heading", name="Change the policy")).to_have_count(0)
        await page.get_by_role("link", name="Residency report").click()
        await expect(page.get_by_role("heading", level=1, name="Residency report")).to_be_visible()
        table = page.get_by_role("region", name="Resources and where they live")
        await expect(table).to_contain_text("Flagged")
        await expect(table).to_contain_text("accepted by force in v2")
        await page.screenshot(path=str(artifacts / "portal-residency-report.png"), full_page=True)

        async with page.expect_download() as downloading:
            await page.get_by_role("link", name="Download CSV").click()
        download = await downloading.value
        assert re.fullmatch(r"residency-report-\d{8}T\d{6}Z\.csv", download.suggested_filename)
        saved = await download.path()
        content = await asyncio.to_thread(Path(saved).read_text)
        assert content.startswith("kind,id,region_code,jurisdiction")
        assert ",ca-qc-1,CA," in content
        assert "flagged" in content
