"""Billing in a real browser: the billing role sees yesterday's usage drawn and this month's
cost, sets a budget with a hard stop and a webhook (its signing secret shown once), opens
the month's invoice, downloads its CSV and opens its print view; the auditor reads the
invoices but gets no budget form.

Usage goes in through the metering service, prices and the invoice through the billing
services, the way tenancies, the operator and the monthly run put them there."""

from __future__ import annotations

import csv
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoices import service as invoices
from billing.invoices.models import Invoice
from billing.prices.schemas import PriceBookCreate
from billing.prices.service import create_book
from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.metering.service import record_usage
from tests.fixtures.factories import PASSWORD, Tenant, make_org
from tests.integration.billing.conftest import HOUR, QC_RATES, day_hour, gpu_usage, token_usage

pytestmark = [pytest.mark.e2e, pytest.mark.peer_chromium, pytest.mark.slow]


@pytest.fixture
def clock(clock: OffsetClock) -> OffsetClock:
    """On the 1st of a month the clock moves a day, so yesterday's usage is this month's."""
    if clock.now().day == 1:
        clock.advance(86_400)
    return clock


@pytest.fixture
async def customer(demo_url: str, db: AsyncSession, clock: OffsetClock) -> Tenant:
    """An organization with a billing person and an auditor, yesterday's usage at the
    published ca-qc-1 prices, and that usage invoiced and finalized."""
    org = await make_org(db, roles=(TenantRole.BILLING, TenantRole.AUDITOR))
    book = msgspec.convert(
        {
            "effective_from": (clock.now() - timedelta(days=40)).isoformat(),
            "timezone": "America/Toronto",
            "night_start_hour": 0,
            "night_end_hour": 6,
            "rates": QC_RATES,
        },
        PriceBookCreate,
    )
    await create_book(db, "ca-qc-1", book, actor="e2e", now=clock.now())
    at = day_hour(clock)
    usage = [
        gpu_usage(org, "t1", at, 5400),  # 1.5 H100-hours at 4.00 CAD
        token_usage(org, "g1", at, "tokens_in", 2_000_000),  # 2 M at 0.20 CAD
    ]
    await record_usage(db, usage, clock.now())
    await invoices.run(db, at, at + 2 * HOUR, clock.now(), [org.org_id])
    draft = await db.scalar(select(Invoice.id).where(Invoice.org_id == org.org_id))
    assert draft is not None
    await invoices.finalize(db, draft, clock.now())
    await db.commit()
    return org


@pytest.fixture
async def page(browser: Browser, demo_url: str) -> AsyncIterator[Page]:
    """A fresh profile that downloads and accepts confirmations; console errors (CSP
    refusals too) fail the test."""
    context = await browser.new_context(
        base_url=demo_url, viewport={"width": 1366, "height": 900}, accept_downloads=True
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


async def sign_in(page: Page, org: Tenant, role: TenantRole) -> None:
    await page.goto("/login")
    await page.get_by_label("Email address").fill(org.accounts[role].email)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1, name="Dashboard")).to_be_visible()


async def sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/login"))


async def set_budget(page: Page) -> None:
    await page.get_by_label("Currency").select_option("CAD")
    await page.get_by_label("Monthly amount").fill("5")
    await page.get_by_label("Applies to").select_option(label="Whole organization")
    await page.get_by_label("Alert at (percent)").fill("50, 100")
    await page.get_by_label("Hard stop", exact=False).check()
    await page.get_by_label("Webhook URL").fill("https://hooks.example.test/budget")
    await page.get_by_label("E-mail alerts to").fill("finance@example.test")
    await page.get_by_role("button", name="Save budget").click()


class TestBillingInThePortal:
    async def test_billing_person_budgets_and_downloads_the_invoice(
        self, page: Page, customer: Tenant, tmp_path: Path, artifacts: Path
    ) -> None:
        await sign_in(page, customer, TenantRole.BILLING)
        await (
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
        )
        await expect(page.get_by_role("heading", level=1, name="Billing")).to_be_visible()
        await page.wait_for_function(
            "() => window.Chart && Chart.getChart(document.getElementById('chart-usage'))"
        )
        drawn = await page.evaluate(
            "() => Chart.getChart(document.getElementById('chart-usage')).data.datasets"
            ".map(d => [d.label, d.data.reduce((a, b) => a + b, 0)])"
        )
        assert drawn == [["h100", 1.5]]
        cost = page.get_by_test_id("cost-CAD")
        await expect(cost.locator(".stat", has_text="Before tax")).to_contain_text("6.40 CAD")
        await page.screenshot(path=str(artifacts / "portal-billing-overview.png"), full_page=True)

        # A budget with a hard stop and a webhook: the signing secret once, then never.
        tabs = page.get_by_role("navigation", name="Billing")
        await tabs.get_by_role("link", name="Budgets").click()
        await expect(page.get_by_text("No budget yet.")).to_be_visible()
        await set_budget(page)
        secret = page.locator("#budget-webhook-secret")
        await expect(secret).to_have_text(re.compile(r"^whsec_\S{20,}$"))
        shown = await secret.inner_text()
        await expect(page.get_by_text("This is the only time the secret is shown.")).to_be_visible()
        await page.get_by_role("link", name="Done").click()
        budgets = page.get_by_test_id("budgets")
        await expect(budgets).to_contain_text("Whole organization")
        await expect(budgets).to_contain_text("Hard stop at 100%")
        await expect(budgets).to_contain_text("0.00 CAD of 5.00 CAD this month")
        assert shown not in await page.content()

        # The month's invoice: its lines, the CSV and the print view.
        await tabs.get_by_role("link", name="Invoices").click()
        await page.get_by_test_id("invoices").get_by_role("link", name=re.compile("^INV-")).click()
        heading = page.get_by_role("heading", level=1, name=re.compile(r"^Invoice INV-"))
        await expect(heading).to_be_visible()
        number = (await heading.inner_text()).removeprefix("Invoice ")
        lines = page.get_by_test_id("invoice-lines")
        await expect(lines.locator("tbody tr")).to_have_count(2)
        await expect(lines).to_contain_text("1.5 GPU-hour")
        async with page.expect_download() as pending:
            await page.get_by_role("link", name="Download CSV").click()
        download = await pending.value
        assert download.suggested_filename == f"{number}.csv"
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        with saved.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert {(r["kind"], Decimal(r["amount"])) for r in rows} == {
            ("gpu_seconds", Decimal("6.00")),
            ("tokens_in", Decimal("0.40")),
        }
        assert {r["number"] for r in rows} == {number}
        assert {r["status"] for r in rows} == {"finalized"}

        await page.get_by_role("link", name="Print / save as PDF").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text(f"Invoice {number}")
        await expect(page.locator(".invoice__lines tbody tr")).to_have_count(2)
        await page.emulate_media(media="print")
        await page.screenshot(path=str(artifacts / "portal-invoice-print.png"), full_page=True)

    async def test_the_auditor_reads_invoices_but_cannot_change_budgets(
        self, page: Page, customer: Tenant
    ) -> None:
        await sign_in(page, customer, TenantRole.AUDITOR)
        await page.goto("/billing/invoices")
        await expect(page.get_by_test_id("invoices").locator("tbody tr")).to_have_count(1)
        await page.get_by_test_id("invoices").get_by_role("link", name=re.compile("^INV-")).click()
        await expect(page.get_by_test_id("amount-due")).to_contain_text("CAD")

        await page.goto("/billing/budgets")
        await expect(page.get_by_role("heading", level=1, name="Budgets")).to_be_visible()
        await expect(page.get_by_role("button", name="Save budget")).to_have_count(0)
        csrf = await page.locator('input[name="_csrf"]').first.get_attribute("value")
        assert csrf
        refused = await page.request.post(
            "/billing/budgets",
            form={"_csrf": csrf, "currency": "CAD", "amount": "1"},
            headers={"Accept": "text/html"},
        )
        assert refused.status == 403
        await sign_out(page)
