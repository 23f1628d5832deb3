"""Operator access approval in a real browser: an operator asks, the tenant's owner approves
in the portal, the operator reads the support data, the auditor finds the use in the report."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.peer_chromium, pytest.mark.slow]

OPERATOR = ("ops-ca@provider.example", "demo-ops-ca-pass")
OWNER = ("owner@demo.example", "demo-owner-pass")
AUDITOR = ("auditor@demo.example", "demo-auditor-pass")
JUSTIFICATION = "SUP-2231: customer reports stuck jobs"


@pytest.fixture
async def person(browser: Browser, demo_url: str) -> AsyncIterator[Callable[[], Awaitable[Page]]]:
    """Opens one fresh browser profile per person; console errors (CSP too) fail the test."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def open_page() -> Page:
        context = await browser.new_context(
            base_url=demo_url, viewport={"width": 1366, "height": 900}
        )
        contexts.append(context)
        opened = await context.new_page()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                errors.append(message.text)

        opened.on("console", on_console)
        opened.on("pageerror", lambda exc: errors.append(str(exc)))
        return opened

    yield open_page
    for context in contexts:
        await context.close()
    assert errors == [], errors


async def sign_in(page: Page, email: str, password: str, start: str) -> None:
    await page.goto(start)
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Sign in").click()


class TestAccessApproval:
    async def test_operator_asks_owner_approves_operator_reads_auditor_sees_the_use(
        self, person: Callable[[], Awaitable[Page]], artifacts: Path
    ) -> None:
        operator = await person()
        await sign_in(operator, *OPERATOR, "/operator/access")
        await expect(
            operator.get_by_role("heading", level=1, name="Access requests")
        ).to_be_visible()
        await operator.get_by_label("Organization").fill("demo")
        await operator.get_by_label("Reason").select_option("customer_initiated_support")
        await operator.get_by_label("Justification").fill(JUSTIFICATION)
        await operator.get_by_label("Duration").select_option("60")
        await operator.get_by_role("button", name="Send request").click()
        await expect(operator.get_by_role("status")).to_contain_text("Request sent")
        mine = operator.get_by_role("region", name="Your requests").locator("tbody tr")
        await expect(mine.first).to_contain_text("Pending")

        owner = await person()
        await sign_in(owner, *OWNER, "/dashboard")
        await (
            owner.get_by_role("navigation", name="Main")
            .get_by_role("link", name="Operator access")
            .click()
        )
        waiting = owner.get_by_role("region", name="Requests waiting for a decision")
        await expect(waiting).to_contain_text(JUSTIFICATION)
        await expect(waiting).to_contain_text("ops-ca@provider.example")
        await owner.screenshot(path=str(artifacts / "portal-access-pending.png"), full_page=True)
        await waiting.get_by_role("button", name=re.compile("^Approve")).click()
        await expect(owner.get_by_role("status")).to_contain_text("Access approved")
        await expect(owner.get_by_role("region", name="Grants open now")).to_contain_text(
            "ops-ca@provider.example"
        )

        await operator.reload()
        await operator.get_by_role("link", name="Open support data").click()
        await expect(operator.get_by_role("heading", level=1)).to_contain_text("Demo Research Lab")
        projects = operator.get_by_role("region", name="Projects").locator("tbody tr")
        await expect(projects).to_have_count(2)
        await operator.screenshot(path=str(artifacts / "portal-access-support.png"), full_page=True)

        auditor = await person()
        await sign_in(auditor, *AUDITOR, "/access/report")
        await expect(auditor.get_by_role("heading", level=1, name="Access report")).to_be_visible()
        report = auditor.get_by_role("region", name="Access report")
        await expect(report).to_contain_text(JUSTIFICATION)
        await expect(report).to_contain_text("support data page in the portal")
        await expect(auditor.get_by_role("link", name="Download CSV")).to_be_visible()
        await auditor.screenshot(path=str(artifacts / "portal-access-report.png"), full_page=True)
