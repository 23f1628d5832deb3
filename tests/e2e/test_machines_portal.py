"""Reaching a running tenancy in a real browser: a member creates a Kubernetes namespace
with a Jupyter workspace, shows its kubeconfig once and rotates it; then creates a VM,
stops and starts it, and opens its console link.

The server runs the reconciler in-process, as ``make run`` does, over the demo data plus
one shape in ca-qc-1; the embedded ``sim`` driver plays the machines.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.settings import Settings
from tests.fixtures.capacity import make_shape

pytestmark = [pytest.mark.e2e, pytest.mark.peer_chromium, pytest.mark.slow]

MEMBER = ("member@demo.example", "demo-member-pass")
SETTLE_MS = 30_000  # upper bound for the reconciler to bring a simulated tenancy up


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The served app drives tenancies itself, like ``make run``."""
    return settings.model_copy(update={"reconciler_enabled": True})


@pytest.fixture
async def shaped_url(demo_url: str, db: AsyncSession, clock: OffsetClock) -> str:
    await make_shape(db, clock, region="ca-qc-1", name="l40s-1", model="l40s", gpus_per_node=1,
                     price="1.90")  # fmt: skip
    await db.commit()
    return demo_url


@pytest.fixture
def asked() -> list[str]:
    """The confirmations the page asked, in order."""
    return []


@pytest.fixture
async def page(browser: Browser, shaped_url: str, asked: list[str]) -> AsyncIterator[Page]:
    """A signed-in member in a fresh profile that accepts confirmations (and records what
    it was asked); console errors (CSP too) fail the test."""
    context = await browser.new_context(
        base_url=shaped_url, viewport={"width": 1366, "height": 900}
    )
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
    await opened.goto("/login")
    await opened.get_by_label("Email address").fill(MEMBER[0])
    await opened.get_by_label("Password", exact=True).fill(MEMBER[1])
    await opened.get_by_role("button", name="Sign in").click()
    await expect(opened.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()
    yield opened
    await context.close()
    assert errors == [], errors


async def create(page: Page, name: str, kind: str, *, workspace_idle: str = "") -> None:
    """Fill the create form with the l40s-1 shape and wait for the tenancy to be active."""
    await page.goto("/tenancies/new")
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_label("Kind").select_option(kind)
    await page.get_by_label("Region", exact=True).select_option("ca-qc-1")
    await page.get_by_label(re.compile(r"^l40s-1 in ca-qc-1")).check()
    workspace = page.get_by_label("Developer workspace (Jupyter)")
    if kind != "kubernetes":
        await expect(workspace).to_be_hidden()  # Kubernetes only
    if workspace_idle:
        idle = page.get_by_label("Idle shutdown after (minutes)")
        await expect(idle).to_be_hidden()  # until the box is ticked
        await workspace.check()
        await expect(idle).to_have_value("60")
        await idle.fill(workspace_idle)
    await page.get_by_role("button", name="Create tenancy").click()
    await expect(page.get_by_role("heading", level=1, name=re.compile(name))).to_be_visible()
    state = page.locator(".tenancy-state .badge--state")
    await expect(state).to_have_text("Active", timeout=SETTLE_MS)  # followed, no reload


def token_of(kubeconfig: str) -> str:
    token: str = yaml.safe_load(kubeconfig)["users"][0]["user"]["token"]
    return token


class TestMachinesInThePortal:
    async def test_member_reveals_the_kubeconfig_once_and_rotates_it(
        self, page: Page, asked: list[str], artifacts: Path
    ) -> None:
        await create(page, "ns-e2e", "kubernetes", workspace_idle="30")
        workspace = page.get_by_role("region", name="Developer workspace")
        await expect(workspace).to_contain_text("Jupyter")
        await expect(workspace).to_contain_text("After 30 minutes without activity")
        access = page.get_by_role("region", name="Cluster access")
        await expect(access).to_contain_text("Not yet: it can be shown once")
        tenancy_url = page.url.split("?")[0]

        await access.get_by_role("button", name="Show kubeconfig (once)").click()
        shown = page.get_by_role("region", name="Your kubeconfig")
        await expect(shown.get_by_text("Copy it now: it will not be shown again.")).to_be_visible()
        value = shown.get_by_label("Kubeconfig of ns-e2e")
        await expect(value).to_have_attribute("readonly", "")
        first = await value.input_value()
        assert "apiVersion: v1" in first
        await expect(shown.get_by_role("button", name="Copy")).to_be_visible()
        assert "token" not in page.url
        await page.screenshot(path=str(artifacts / "portal-kubeconfig-once.png"), full_page=True)

        await page.goto(tenancy_url)
        access = page.get_by_role("region", name="Cluster access")
        await expect(access).to_contain_text("it is not kept, rotate to get a new one")
        await expect(access.get_by_role("button", name="Show kubeconfig (once)")).to_have_count(0)
        assert first not in await page.content()

        await access.get_by_role("button", name="Rotate").click()
        await expect(page.get_by_text("Kubeconfig rotated: every earlier one")).to_be_visible()
        assert any("Every earlier one stops working" in q for q in asked)
        access = page.get_by_role("region", name="Cluster access")
        rotations = access.locator("dt", has_text="Rotations").locator("xpath=../dd")
        await expect(rotations).to_have_text("1")
        await access.get_by_role("button", name="Show kubeconfig (once)").click()
        second = await page.get_by_label("Kubeconfig of ns-e2e").input_value()
        assert token_of(second) != token_of(first)

    async def test_member_stops_and_starts_a_vm_and_opens_its_console(
        self, page: Page, asked: list[str], artifacts: Path
    ) -> None:
        await create(page, "vm-e2e", "vm")
        machine = page.get_by_role("region", name="Machine")
        await expect(page.get_by_role("region", name="Cluster access")).to_have_count(0)

        await machine.get_by_role("button", name="Stop").click()
        stopped = page.get_by_text("Stopped: the virtual machine is powered off.")
        await expect(stopped).to_be_visible()
        assert any(q.startswith("Stop vm-e2e?") for q in asked)
        timeline = page.get_by_role("list", name="Events, newest first")
        await expect(timeline).to_contain_text("simulated VM is off (stop)")

        machine = page.get_by_role("region", name="Machine")
        await machine.get_by_role("button", name="Start").click()
        started = page.get_by_text("Started: the virtual machine is powered on.")
        await expect(started).to_be_visible()
        await expect(timeline).to_contain_text("simulated VM is on (start)")

        machine = page.get_by_role("region", name="Machine")
        await machine.get_by_role("button", name="Open console").click()
        link = page.get_by_role("region", name="Console link")
        await expect(link).to_contain_text("Valid until")
        console = link.get_by_role("link", name=re.compile("Open the VNC console"))
        href = await console.get_attribute("href")
        assert href is not None
        assert href.startswith("https://console.sim.invalid/")
        assert "token=" in href
        await expect(console).to_have_attribute("rel", "noopener noreferrer")
        assert "token" not in page.url  # the link never travels in a URL of ours
        await page.screenshot(path=str(artifacts / "portal-vm-console.png"), full_page=True)
