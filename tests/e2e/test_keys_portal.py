"""Keys & secrets in a real browser: an owner stores a secret and rotates the data key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.peer_chromium, pytest.mark.slow]

OWNER = ("owner@demo.example", "demo-owner-pass")
VALUE = "hf_e2e_7c0a55d1f2b94e6e"


@pytest.fixture
async def page(browser: Browser, demo_url: str) -> AsyncIterator[Page]:
    """A fresh profile; console errors (CSP violations included) fail the test."""
    context = await browser.new_context(base_url=demo_url, viewport={"width": 1366, "height": 900})
    opened = await context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()  # the rotate button asks for confirmation

    opened.on("console", on_console)
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("dialog", accept)
    yield opened
    await context.close()
    assert errors == [], errors


class TestKeysAndSecrets:
    async def test_owner_adds_a_secret_and_rotates_the_data_key(
        self, page: Page, artifacts: Path
    ) -> None:
        await page.goto("/login")
        await page.get_by_label("Email address").fill(OWNER[0])
        await page.get_by_label("Password", exact=True).fill(OWNER[1])
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()

        await (
            page.get_by_role("navigation", name="Main")
            .get_by_role("link", name="Keys & secrets")
            .click()
        )
        await expect(page.get_by_role("heading", level=1, name="Keys & secrets")).to_be_visible()
        await page.get_by_label("Name", exact=True).fill("hf-token")
        await page.get_by_label("Kind").select_option("model_repository_credentials")
        await page.get_by_label("Value", exact=True).fill(VALUE)
        await page.get_by_role("button", name="Save secret").click()

        await expect(page.get_by_role("status")).to_contain_text("The secret hf-token was saved")
        secrets = page.get_by_role("region", name="Secrets").locator("tbody tr")
        await expect(secrets).to_have_count(1)
        await expect(secrets.first).to_contain_text("Model repository credentials")
        assert VALUE not in await page.content()

        await page.get_by_role("link", name="Replace the value of hf-token").click()
        await expect(
            page.get_by_role("heading", name="Replace the value of hf-token")
        ).to_be_visible()
        await page.get_by_label("New value").fill(VALUE + "-2")
        await page.get_by_role("button", name="Save new value").click()
        await expect(page.get_by_role("status")).to_contain_text("The secret hf-token was saved")
        await expect(secrets).to_have_count(1)

        await page.get_by_role("button", name="Rotate data key").click()

        await expect(page.get_by_role("status")).to_contain_text("A new data key version")
        keys = page.get_by_role("region", name="Data keys").locator("tbody tr")
        await expect(keys).to_have_count(2)
        await expect(keys.first).to_contain_text("v2")
        await expect(keys.first).to_contain_text("Active")
        await expect(keys.nth(1)).to_contain_text("Retired")
        await page.screenshot(path=str(artifacts / "portal-keys.png"), full_page=True)
