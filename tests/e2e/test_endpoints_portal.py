"""Endpoints in a real browser against a real Triton: a member creates an endpoint from the
form with the built-in tiny model of the region's store, watches it become Ready on its
own page (the page follows it), calls it with the OpenAI Python client through the
gateway, and sees the request and its tokens in the page's live metrics.

The server runs the reconciler in-process, as ``make run`` does, over the demo data; the
replicas of ca-qc-1 run on the local Triton driver."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.endpoints.modelrepo.tiny import write_tiny_model
from control_plane.endpoints.triton.server import triton_available
from control_plane.identity.models import Organization, Project
from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from tests.conftest import need_peer
from tests.fixtures.factories import Tenant, make_api_key

pytestmark = [pytest.mark.e2e, pytest.mark.peer_chromium, pytest.mark.peer_triton, pytest.mark.slow]

MEMBER = ("member@demo.example", "demo-member-pass")
REGION = "ca-qc-1"
READY_MS = 120_000  # placement, Triton start-up and model load on CPU


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The served app drives replicas itself (like ``make run``), on a real Triton."""
    need_peer(triton_available())
    return settings.model_copy(
        update={
            "reconciler_enabled": True,
            "reconcile_interval_seconds": 0.2,
            "model_store_root": tmp_path / "models",
            "triton_dir": tmp_path / "triton",
            "drivers": {f"{REGION}/inference": "triton-local"},
        }
    )


@pytest.fixture(autouse=True)
def stop_tritons(settings: Settings) -> Iterator[None]:
    """Whatever the test leaves running, its Triton servers stop with it."""
    yield
    from control_plane.endpoints.triton.driver import _alive, _kill_group

    for state in settings.triton_dir.glob("*/state.json"):
        pid = json.loads(state.read_text())["pid"]
        if _alive(pid):
            _kill_group(int(pid))


@pytest.fixture
def tiny(settings: Settings) -> Path:
    return write_tiny_model(settings.model_store_root / REGION, "tiny-chat")


@pytest.fixture
async def key(demo_url: str, db: AsyncSession) -> str:
    """An API key of the demo organization with the member role."""
    org = (await db.execute(select(Organization).where(Organization.slug == "demo"))).scalar_one()
    project = (
        await db.execute(select(Project).where(Project.org_id == org.id).limit(1))
    ).scalar_one()
    secret = await make_api_key(db, Tenant(org.id, org.slug, project.id), TenantRole.MEMBER)
    await db.commit()
    return secret


@pytest.fixture
async def page(browser: Browser, demo_url: str, tiny: Path) -> AsyncIterator[Page]:
    """A fresh profile that accepts confirmations; console errors (CSP too) fail the test."""
    context = await browser.new_context(base_url=demo_url, viewport={"width": 1366, "height": 900})
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


async def sign_in(page: Page) -> None:
    await page.goto("/login")
    await page.get_by_label("Email address").fill(MEMBER[0])
    await page.get_by_label("Password", exact=True).fill(MEMBER[1])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()


async def fill_create_form(page: Page) -> None:
    await expect(page.get_by_role("heading", level=1, name="New endpoint")).to_be_visible()
    await page.get_by_label("Name", exact=True).fill("chat-e2e")
    await page.get_by_label("Region", exact=True).select_option(REGION)
    model = page.get_by_label("Model", exact=True)
    option = model.locator("option", has_text=re.compile(r"^tiny-chat · store ca-qc-1 · "))
    await expect(option).to_contain_text("licence")
    await model.select_option(await option.get_attribute("value"))
    await page.get_by_label("GPU model").select_option("h100")
    await page.get_by_label("Replica size").select_option("quarter")
    await page.get_by_label("Minimum replicas").fill("1")
    await page.get_by_label("Maximum replicas").fill("1")


class TestEndpointInThePortal:
    async def test_member_creates_an_endpoint_calls_it_and_sees_its_metrics(
        self, page: Page, demo_url: str, key: str, artifacts: Path
    ) -> None:
        await sign_in(page)
        nav = page.get_by_role("navigation", name="Main")
        await nav.get_by_role("link", name="Endpoints").click()
        await expect(page.get_by_role("heading", level=1, name="Endpoints")).to_be_visible()
        await expect(page.get_by_text("No endpoints yet.")).to_be_visible()
        await page.get_by_role("link", name="New endpoint").click()
        await fill_create_form(page)
        await page.screenshot(path=str(artifacts / "portal-endpoint-new.png"), full_page=True)
        await page.get_by_role("button", name="Create endpoint").click()

        await expect(page.get_by_role("heading", level=1, name="chat-e2e")).to_be_visible()
        await expect(page.get_by_text("Endpoint created: residency")).to_be_visible()
        state = page.locator(".endpoint-state .badge--state")
        await expect(state).to_have_text("Ready", timeout=READY_MS)  # followed, no reload
        await expect(page.get_by_role("status").filter(has_text="now Ready")).to_be_attached()
        await expect(page.get_by_text("No request yet")).to_be_visible()

        client = openai.AsyncOpenAI(base_url=f"{demo_url}/v1", api_key=key, max_retries=0)
        answer = await client.chat.completions.create(
            model="chat-e2e",
            messages=[{"role": "user", "content": "Hello from the portal test"}],
            max_tokens=9,
        )
        await client.close()
        assert answer.usage is not None
        assert answer.usage.completion_tokens == 9

        await page.reload()
        metrics = page.locator("#endpoint-metrics")
        await expect(metrics.locator(".stat", has_text="Requests")).to_contain_text("1")
        tokens_in = metrics.locator(".stat", has_text="Tokens in")
        await expect(tokens_in).to_contain_text(str(answer.usage.prompt_tokens))
        await expect(metrics.locator(".stat", has_text="Tokens out")).to_contain_text("9")
        snippet = page.locator("#snippet-openai")
        await expect(snippet).to_contain_text('openai.OpenAI(base_url="')
        await page.screenshot(path=str(artifacts / "portal-endpoint-ready.png"), full_page=True)

        await page.get_by_role("button", name="Delete endpoint").click()
        await expect(page.get_by_text("Endpoint deleted")).to_be_visible()
        await expect(page.get_by_text("No endpoints yet.")).to_be_visible()
