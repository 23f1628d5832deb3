"""Pools in a real browser: an operator-admin sets a pool aside and lends it to the demo
organization every day; the demo member then sees the opening on their Pools page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.inventory.models import Node
from control_plane.pools.models import Pool, PoolNode

pytestmark = [pytest.mark.e2e, pytest.mark.peer_chromium, pytest.mark.slow]

OPS_ADMIN = ("ops-admin@provider.example", "demo-opsadmin-pass")
MEMBER = ("member@demo.example", "demo-member-pass")


@pytest.fixture
async def page(browser: Browser, demo_url: str) -> AsyncIterator[Page]:
    """A fresh profile; console errors (CSP too) fail the test."""
    context = await browser.new_context(base_url=demo_url, viewport={"width": 1366, "height": 900})
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


async def sign_in(page: Page, who: tuple[str, str]) -> None:
    await page.goto("/login")
    await page.get_by_label("Email address").fill(who[0])
    await page.get_by_label("Password", exact=True).fill(who[1])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_be_visible()


class TestPoolsInThePortal:
    async def test_operator_lends_a_pool_and_the_member_sees_it_open(
        self, page: Page, db: AsyncSession, artifacts: Path
    ) -> None:
        await sign_in(page, OPS_ADMIN)
        await page.goto("/operator/pools?region=ca-qc-1")
        await page.get_by_label("Name", exact=True).fill("render-farm")
        await page.get_by_label("Time zone").fill("America/Toronto")
        await page.get_by_role("button", name="Create pool").click()
        await expect(page.get_by_role("heading", name="render-farm")).to_be_visible()

        # Membership is set through the API or cpctl (no portal form): the L40S nodes.
        pool = (await db.execute(select(Pool).where(Pool.name == "render-farm"))).scalar_one()
        hosts = await db.execute(select(Node.id).where(Node.hostname.like("qc-l40s-0%")))
        for node_id in list(hosts.scalars())[:4]:
            db.add(PoolNode(node_id=node_id, pool_id=pool.id))
        await db.commit()

        await page.reload()
        await page.get_by_label("Organization").fill("demo")
        for day in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"):
            await page.get_by_label(day, exact=True).check()
        await page.get_by_label("From").fill("00:00")
        await page.get_by_label("To", exact=True).fill("00:00")
        await page.get_by_role("button", name="Add window").click()
        operator_card = page.get_by_role("region", name="render-farm", exact=True)
        await expect(operator_card).to_contain_text("open now to")
        await expect(operator_card.get_by_role("table")).to_contain_text("00:00")
        await page.screenshot(path=str(artifacts / "portal-pools-operator.png"), full_page=True)

        await page.context.clear_cookies()
        await sign_in(page, MEMBER)
        await page.get_by_role("navigation", name="Main").get_by_role("link", name="Pools").click()
        await expect(page.get_by_role("heading", level=1, name="Pools")).to_be_visible()
        card = page.get_by_role("region", name="render-farm", exact=True)
        await expect(card).to_contain_text("ca-qc-1")
        await expect(card).to_contain_text("L40S")
        await expect(card.get_by_text("Open now").first).to_be_visible()
        await page.screenshot(path=str(artifacts / "portal-pools-member.png"), full_page=True)
