"""The billing pages: usage for whoever reads usage, money for the billing readers, forms
for the billing writers that answer bad input next to the field, and invoices that no
other organization can open."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.seed.demo import seed_catalog
from tests.fixtures.factories import Tenant, make_org, make_project, make_user, signed_in
from tests.integration.billing.conftest import (
    BOOKS,
    HOUR,
    QC_RATES,
    RUNS,
    Client,
    day_hour,
    gpu_usage,
    must,
    store,
    token_usage,
)
from tests.integration.portal.test_pages import HTML, text_of


@pytest.fixture(autouse=True)
async def catalog(db: AsyncSession, clock: OffsetClock) -> None:
    """The demo catalog; on the 1st of a month the clock moves a day so that yesterday's
    usage belongs to this month's cost."""
    if clock.now().day == 1:
        clock.advance(86_400)
    await seed_catalog(db, clock)
    await db.commit()


@pytest.fixture
async def customer(db: AsyncSession) -> Tenant:
    tenant = await make_org(
        db, roles=(TenantRole.OWNER, TenantRole.BILLING, TenantRole.MEMBER, TenantRole.AUDITOR)
    )
    await db.commit()
    return tenant


@pytest.fixture
async def other(db: AsyncSession) -> Tenant:
    tenant = await make_org(db, roles=(TenantRole.OWNER,))
    await db.commit()
    return tenant


@pytest.fixture
async def operator(client: Client, db: AsyncSession) -> dict[str, str]:
    account = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN)
    await db.commit()
    return await signed_in(client, account)


@pytest.fixture
async def book(client: Client, operator: dict[str, str], clock: OffsetClock) -> Any:
    body = {
        "effective_from": (clock.now() - timedelta(days=40)).isoformat(),
        "timezone": "America/Toronto",
        "night_start_hour": 0,
        "night_end_hour": 6,
        "rates": QC_RATES,
    }
    return await must(client.post(BOOKS, json=body, headers=operator), 201)


async def as_role(client: Client, org: Tenant, role: TenantRole) -> dict[str, str]:
    """HTML request headers of ``role``'s session (with its CSRF token for forms)."""
    return {**await signed_in(client, org.accounts[role]), **HTML}


async def invoice_of(
    client: Client, operator: dict[str, str], org: Tenant, auth: dict[str, str], clock: OffsetClock
) -> str:
    """Yesterday's usage (1.5 H100-hours, 2 M input tokens) invoiced and finalized."""
    at = day_hour(clock)
    body = {"start": at.isoformat(), "end": (at + 2 * HOUR).isoformat()}
    await must(client.post(RUNS, json=body, headers=operator))
    [listed] = await must(client.get(f"/api/v1/orgs/{org.org_id}/invoices", headers=auth))
    await must(client.post(f"/api/v1/billing/invoices/{listed['id']}/finalize", headers=operator))
    return str(listed["id"])


async def yesterday(db: AsyncSession, clock: OffsetClock, org: Tenant) -> None:
    at = day_hour(clock)
    await store(
        db,
        [
            gpu_usage(org, "t1", at, 5400),  # 1.5 H100-hours at 4.00 = 6.00
            token_usage(org, "g1", at, "tokens_in", 2_000_000),  # 2 M at 0.20 = 0.40
        ],
        clock.now(),
    )


def chart_data(page: str, chart_id: str) -> Any:
    match = re.search(rf'<script type="application/json" id="{chart_id}-data">(.*?)</script>', page)
    assert match, f"no chart {chart_id}"
    return json.loads(match.group(1))


def form_post(auth: dict[str, str], **fields: str) -> dict[str, Any]:
    return {"data": {"_csrf": auth["X-CSRF-Token"], **fields}, "headers": auth}


class TestOverview:
    async def test_the_billing_role_sees_usage_cost_and_latest_invoices(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        operator: dict[str, str],
        book: Any,
    ) -> None:
        await yesterday(db, clock, customer)
        biller = await as_role(client, customer, TenantRole.BILLING)
        invoice_id = await invoice_of(client, operator, customer, biller, clock)

        page = await client.get("/billing", headers=biller)

        assert page.status_code == 200, page.text
        assert 'href="/billing" aria-current="page"' in page.text
        chart = chart_data(page.text, "chart-usage")
        [h100] = chart["series"]
        assert h100["label"] == "h100"
        assert sum(h100["values"]) == 1.5
        assert len(chart["labels"]) == 30
        text = text_of(page.text)
        assert "GPU-hours 1.5" in text
        assert "Input tokens 2,000,000" in text
        cost = re.search(r'data-testid="cost-CAD"(.*?)</section>', page.text, re.S)
        assert cost, "no CAD cost"
        assert "Before tax 6.40 CAD" in text_of(cost.group(1))
        assert "GPU time 6.00 CAD" in text_of(cost.group(1))
        assert f'href="/billing/invoices/{invoice_id}"' in page.text
        assert "No budget yet." in text
        # finalized without a billing profile: no customer on the document
        detail = await client.get(f"/billing/invoices/{invoice_id}", headers=biller)
        assert detail.status_code == 200, detail.text
        assert "Billed to" not in detail.text

    async def test_a_member_sees_usage_but_no_money(
        self, client: Client, db: AsyncSession, clock: OffsetClock, customer: Tenant, book: Any
    ) -> None:
        await yesterday(db, clock, customer)
        member = await as_role(client, customer, TenantRole.MEMBER)

        page = await client.get("/billing", headers=member)
        invoices = await client.get("/billing/invoices", headers=member)
        budgets = await client.get("/billing/budgets", headers=member)

        assert page.status_code == 200
        assert 'href="/billing" aria-current="page"' in page.text
        assert "Cost in" not in page.text
        assert 'href="/billing/invoices"' not in page.text
        assert sum(chart_data(page.text, "chart-usage")["series"][0]["values"]) == 1.5
        assert invoices.status_code == 403
        assert budgets.status_code == 403

    async def test_nothing_yet_shows_empty_states(self, client: Client, customer: Tenant) -> None:
        owner = await as_role(client, customer, TenantRole.OWNER)

        page = await client.get("/billing", headers=owner)

        assert page.status_code == 200
        text = text_of(page.text)
        assert "Nothing to pay for yet this month." in text
        assert "No invoice yet." in text
        assert chart_data(page.text, "chart-usage")["series"] == []


class TestUsageExplorer:
    async def test_gpu_hours_stacked_by_project(
        self, client: Client, db: AsyncSession, clock: OffsetClock, customer: Tenant
    ) -> None:
        second = await make_project(db, customer.org_id, "training")
        await db.commit()
        at = day_hour(clock)
        await store(
            db,
            [
                gpu_usage(customer, "a", at, 3600),
                gpu_usage(customer, "b", at, 7200, project=second, tenancy="ten_b"),
            ],
            clock.now(),
        )
        member = await as_role(client, customer, TenantRole.MEMBER)

        page = await client.get("/billing/usage?days=7&group=project", headers=member)

        assert page.status_code == 200, page.text
        chart = chart_data(page.text, "chart-usage-explorer")
        assert [(s["label"], sum(s["values"])) for s in chart["series"]] == [
            ("Training", 2.0),
            ("Default", 1.0),
        ]
        assert len(chart["labels"]) == 7
        rows = re.search(r'data-testid="usage-totals".*?<tbody>(.*?)</tbody>', page.text, re.S)
        assert rows
        assert [text_of(r) for r in rows.group(1).split("</tr>") if text_of(r)] == [
            f"Training {second} 2.0 66.7%",
            f"Default {customer.project_id} 1.0 33.3%",
        ]

    async def test_tokens_per_hour_by_endpoint_for_one_project(
        self, client: Client, db: AsyncSession, clock: OffsetClock, customer: Tenant
    ) -> None:
        at = day_hour(clock)
        await store(
            db,
            [
                token_usage(customer, "g1", at, "tokens_out", 1200, endpoint="ep_a"),
                token_usage(customer, "g2", at, "tokens_out", 300, endpoint="ep_b"),
            ],
            clock.now(),
        )
        owner = await as_role(client, customer, TenantRole.OWNER)
        query = (
            f"days=7&granularity=hour&type=tokens_out&group=endpoint&project={customer.project_id}"
        )

        page = await client.get(f"/billing/usage?{query}", headers=owner)

        chart = chart_data(page.text, "chart-usage-explorer")
        assert len(chart["labels"]) == 7 * 24
        assert chart["axis"] == "Output tokens"
        assert {s["label"]: sum(s["values"]) for s in chart["series"]} == {
            "ep_a": 1200,
            "ep_b": 300,
        }

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ("days=13", "days"),
            ("days=30&granularity=hour", "granularity"),
            ("group=api_key", "group"),
            ("type=dollars", "type"),
            ("project=prj_not_ours", "project"),
        ],
    )
    async def test_bad_filters_are_explained_next_to_the_choice(
        self, client: Client, customer: Tenant, query: str, field: str
    ) -> None:
        member = await as_role(client, customer, TenantRole.MEMBER)

        page = await client.get(f"/billing/usage?{query}", headers=member)

        assert page.status_code == 400
        assert f'id="usage-{field}-error"' in page.text
        assert "chart-usage-explorer" not in page.text


class TestInvoices:
    async def test_detail_shows_lines_taxes_and_both_documents(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        operator: dict[str, str],
        book: Any,
    ) -> None:
        await yesterday(db, clock, customer)
        biller = await as_role(client, customer, TenantRole.BILLING)
        profile = {"legal_name": "Érable Inc.", "country": "CA", "subdivision": "QC",
                   "email": "ap@erable.test"}  # fmt: skip
        await client.post("/billing/profile", **form_post(biller, **profile))
        auditor = await as_role(client, customer, TenantRole.AUDITOR)
        invoice_id = await invoice_of(client, operator, customer, auditor, clock)

        listing = await client.get("/billing/invoices", headers=auditor)
        detail = await client.get(f"/billing/invoices/{invoice_id}", headers=auditor)
        printed = await client.get(f"/billing/invoices/{invoice_id}/print", headers=auditor)
        sheet = await client.get(f"/billing/invoices/{invoice_id}/invoice.csv", headers=auditor)

        assert listing.status_code == 200
        assert f'href="/billing/invoices/{invoice_id}"' in listing.text
        assert detail.status_code == 200
        lines = re.search(r'data-testid="invoice-lines".*?<tbody>(.*?)</tbody>', detail.text, re.S)
        assert lines
        rows = [text_of(r) for r in lines.group(1).split("</tr>") if text_of(r)]
        assert any(
            "1.5 GPU-hour" in r and "6.00 CAD" in r and "Québec: GST 5% + QST 9.975%" in r
            for r in rows
        ), rows
        text = text_of(detail.text)
        assert "Amount due 7.36 CAD" in text  # 6.40 + 0.90 + 0.06 of tax
        assert "Finalized" in text
        assert printed.status_code == 200
        assert printed.headers["content-type"].startswith("text/html")
        assert 'class="invoice-doc"' in printed.text
        assert sheet.headers["content-type"].startswith("text/csv")
        assert "attachment" in sheet.headers["content-disposition"]
        rows_csv = list(csv.DictReader(io.StringIO(sheet.text)))
        assert sorted(r["amount"] for r in rows_csv) == ["0.40", "6.00"]
        assert {r["invoice"] for r in rows_csv} == {invoice_id}

    async def test_another_organization_never_sees_our_invoice(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        other: Tenant,
        operator: dict[str, str],
        book: Any,
    ) -> None:
        await yesterday(db, clock, customer)
        biller = await as_role(client, customer, TenantRole.BILLING)
        invoice_id = await invoice_of(client, operator, customer, biller, clock)
        stranger = await as_role(client, other, TenantRole.OWNER)

        listing = await client.get("/billing/invoices", headers=stranger)
        for path in ("", "/print", "/invoice.csv"):
            response = await client.get(f"/billing/invoices/{invoice_id}{path}", headers=stranger)
            assert response.status_code == 404, path
            assert "6.00" not in response.text
        assert invoice_id not in listing.text
        assert "No invoice yet." in text_of(listing.text)


class TestBudgets:
    async def test_a_budget_with_a_webhook_shows_its_secret_once(
        self, client: Client, customer: Tenant
    ) -> None:
        biller = await as_role(client, customer, TenantRole.BILLING)
        fields = {
            "currency": "CAD",
            "amount": "2500",
            "project_id": customer.project_id,
            "thresholds": "50, 90%, 100",
            "hard_stop": "on",
            "webhook_url": "https://hooks.example.test/budget",
            "email": "finance@example.test",
        }

        saved = await client.post("/billing/budgets", **form_post(biller, **fields))
        again = await client.get("/billing/budgets", headers=biller)

        assert saved.status_code == 200, saved.text
        secret = re.search(r'id="budget-webhook-secret">(whsec_[^<]+)<', saved.text)
        assert secret
        assert secret.group(1) not in again.text
        text = text_of(again.text)
        assert "Project Default" in text
        assert "Hard stop at 100%" in text
        assert "0.00 CAD of 2,500.00 CAD this month" in text
        assert "50%, 90%, 100%" in text

    async def test_saving_without_a_webhook_redirects_and_updates_in_place(
        self, client: Client, customer: Tenant
    ) -> None:
        owner = await as_role(client, customer, TenantRole.OWNER)

        for amount in ("100", "250.50"):
            saved = await client.post(
                "/billing/budgets",
                follow_redirects=False,
                **form_post(owner, currency="CAD", amount=amount, project_id="", thresholds=""),
            )
            assert saved.status_code == 303
        page = await client.get(saved.headers["location"], headers=owner)

        assert "The budget was saved" in text_of(page.text)
        assert page.text.count('class="card budget-list__item"') == 1
        assert "of 250.50 CAD this month" in text_of(page.text)

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"amount": "0"}, "amount"),
            ({"amount": "lots"}, "amount"),
            ({"thresholds": "half, all"}, "thresholds"),
            ({"thresholds": "5000"}, "thresholds"),
            ({"currency": "XYZ"}, "currency"),
            ({"webhook_url": "ftp://files.example.test"}, "webhook_url"),
            ({"email": "not-an-address"}, "email"),
            ({"project_id": "prj_someone_elses"}, "project_id"),
        ],
    )
    async def test_bad_input_is_shown_next_to_the_field(
        self, client: Client, customer: Tenant, fields: dict[str, str], field: str
    ) -> None:
        biller = await as_role(client, customer, TenantRole.BILLING)
        body = {"currency": "CAD", "amount": "100", "thresholds": "80", **fields}

        page = await client.post("/billing/budgets", **form_post(biller, **body))

        assert page.status_code == 400, page.text
        assert f'id="budget-{field}-error"' in page.text
        assert "No budget yet." in text_of(page.text)

    async def test_deleting_a_budget(self, client: Client, customer: Tenant) -> None:
        owner = await as_role(client, customer, TenantRole.OWNER)
        await client.post("/billing/budgets", **form_post(owner, currency="SEK", amount="900"))
        listed = await client.get("/billing/budgets", headers=owner)
        budget_id = re.search(r'name="budget_id" value="([^"]+)"', listed.text)
        assert budget_id

        deleted = await client.post(
            "/billing/budgets/delete",
            follow_redirects=False,
            **form_post(owner, budget_id=budget_id.group(1)),
        )
        gone = await client.post(
            "/billing/budgets/delete",
            follow_redirects=False,
            **form_post(owner, budget_id=budget_id.group(1)),
        )

        assert deleted.headers["location"] == "/billing/budgets?done=deleted"
        assert gone.headers["location"] == "/billing/budgets?done=gone"

    async def test_an_auditor_reads_budgets_but_cannot_change_them(
        self, client: Client, customer: Tenant
    ) -> None:
        owner = await as_role(client, customer, TenantRole.OWNER)
        await client.post("/billing/budgets", **form_post(owner, currency="CAD", amount="10"))
        auditor = await as_role(client, customer, TenantRole.AUDITOR)

        page = await client.get("/billing/budgets", headers=auditor)
        refused = await client.post(
            "/billing/budgets", **form_post(auditor, currency="CAD", amount="1")
        )

        assert page.status_code == 200
        assert "of 10.00 CAD this month" in text_of(page.text)
        assert 'action="/billing/budgets"' not in page.text
        assert "/billing/budgets/delete" not in page.text
        assert refused.status_code == 403


class TestProfile:
    async def test_saving_the_profile_and_refusing_a_bad_country(
        self, client: Client, customer: Tenant
    ) -> None:
        biller = await as_role(client, customer, TenantRole.BILLING)
        good = {
            "legal_name": "Érable Inc.",
            "country": "ca",
            "subdivision": "qc",
            "tax_id": "",
            "email": "ap@erable.test",
        }

        bad = await client.post(
            "/billing/profile", **form_post(biller, **{**good, "country": "Canada"})
        )
        saved = await client.post(
            "/billing/profile", follow_redirects=False, **form_post(biller, **good)
        )
        auditor = await as_role(client, customer, TenantRole.AUDITOR)
        read = await client.get("/billing/profile", headers=auditor)

        assert bad.status_code == 400
        assert 'id="profile-country-error"' in bad.text
        assert 'value="Érable Inc."' in bad.text
        assert saved.status_code == 303
        assert "QC CA" in text_of(read.text)
        assert 'action="/billing/profile"' not in read.text
