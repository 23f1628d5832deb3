"""Tenancies in a real browser: a member picks a shape, watches the tenancy come up on its
own page (the page follows it), then releases it and watches it go back to the pool.

The server runs the reconciler in-process, as ``make run`` does, over the demo data plus
two shapes in ca-qc-1.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.settings import Settings
from tests.fixtures.capacity import make_shape

pytestmark = [pytest.mark.e2e, pytest.mark.peer_chromium, pytest.mark.slow]

MEMBER = ("member@demo.example", "demo-member-pass")
SETTLE_MS = 30_000  # upper bound for the reconciler to move a simulated tenancy along


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The served app drives tenancies itself, like ``make run``."""
    return settings.model_copy(update={"reconciler_enabled": True})


@pytest.fixture
async def shaped_url(demo_url: str, db: AsyncSession, clock: OffsetClock) -> str:
    """The demo deployment, offering two shapes in Québec."""
    await make_shape(db, clock, region="ca-qc-1", name="l40s-1", model="l40s", gpus_per_node=1,
                     price="1.90")  # fmt: skip
    await make_shape(db, clock, region="ca-qc-1", name="h100-2", model="h100", gpus_per_node=2,
                     price="7.40", interconnect="nvlink")  # fmt: skip
    await db.commit()
    return demo_url


@pytest.fixture
async def page(browser: Browser, shaped_url: str) -> AsyncIterator[Page]:
    """A fresh profile that accepts confirmations; console errors (CSP too) fail the test."""
    context = await browser.new_context(
        base_url=shaped_url, viewport={"width": 1366, "height": 900}
    )
    opened = await context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    opened.on("console", on_console)
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("dialog", accept)
    yield opened
    await context.close()
    assert errors == [], errors


class TestTenancyLifecycleInThePortal:
    async def test_member_creates_from_a_shape_watches_it_come_up_and_releases_it(
        self, page: Page, artifacts: Path
    ) -> None:
        await page.goto("/login")
        await page.get_by_label("Email address").fill(MEMBER[0])
        await page.get_by_label("Password", exact=True).fill(MEMBER[1])
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()

        await (
            page.get_by_role("navigation", name="Main")
            .get_by_role("link", name="Tenancies")
            .click()
        )
        await expect(page.get_by_role("heading", level=1, name="Tenancies")).to_be_visible()
        await expect(page.get_by_text("No tenancies yet.")).to_be_visible()
        await page.get_by_role("link", name="New tenancy").click()

        await expect(page.get_by_role("heading", level=1, name="New tenancy")).to_be_visible()
        await page.get_by_label("Name", exact=True).fill("train-e2e")
        await page.get_by_label("Kind").select_option("slurm")
        await page.get_by_label("Region", exact=True).select_option("se-north-1")
        shapes = page.get_by_role("region", name="Shapes on offer").locator("tbody tr")
        await expect(shapes.filter(has_text="h100-2")).to_be_hidden()  # not offered in Sweden
        await page.get_by_label("Region", exact=True).select_option("ca-qc-1")
        await expect(shapes.filter(has_text="h100-2")).to_be_visible()
        await page.get_by_label(re.compile(r"^h100-2 in ca-qc-1")).check()
        await page.screenshot(path=str(artifacts / "portal-tenancy-new.png"), full_page=True)
        await page.get_by_role("button", name="Create tenancy").click()

        await expect(
            page.get_by_role("heading", level=1, name=re.compile("train-e2e"))
        ).to_be_visible()
        await expect(page.get_by_text("Tenancy requested")).to_be_visible()
        await expect(page.get_by_text("Simulated", exact=True).first).to_be_visible()
        state = page.locator(".tenancy-state .badge--state")
        steps = page.get_by_role("list", name="Lifecycle of this tenancy")
        await expect(state).to_have_text("Active", timeout=SETTLE_MS)  # followed, no reload
        await expect(steps.locator("[aria-current=step]")).to_contain_text("Active")
        await expect(page.get_by_role("status").filter(has_text="now Active")).to_be_attached()
        await expect(page.locator(".props")).to_contain_text("sbatch")
        allocations = page.get_by_role("region", name="Allocations").locator("tbody tr")
        await expect(allocations).to_have_count(1)
        await expect(allocations.first).to_contain_text("0, 1")
        await page.screenshot(path=str(artifacts / "portal-tenancy-active.png"), full_page=True)

        await page.get_by_role("button", name="Release tenancy").click()
        await expect(page.get_by_text("Release requested: workloads stop")).to_be_visible()
        await expect(state).to_have_text("Released", timeout=SETTLE_MS)
        await expect(page.get_by_text("No GPUs held.")).to_be_visible()
        await expect(page.get_by_role("button", name="Release tenancy")).to_have_count(0)
        timeline = page.get_by_role("list", name="Events, newest first")
        for step in ("Released", "Cleaning", "Releasing", "Active", "Provisioning", "Placing"):
            await expect(timeline).to_contain_text(step)
        await page.screenshot(path=str(artifacts / "portal-tenancy-released.png"), full_page=True)

        await page.get_by_role("link", name="Tenancies", exact=True).first.click()
        rows = page.get_by_role("region", name="Tenancies").locator("tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text("Released")
        await expect(
            page.get_by_role("figure", name=re.compile("GPUs held per day"))
        ).to_be_visible()
        await page.screenshot(path=str(artifacts / "portal-tenancies.png"), full_page=True)
