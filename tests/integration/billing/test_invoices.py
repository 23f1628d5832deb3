"""From usage to an invoice a customer can read: rated at the published prices with the
tax rule of where they are, reproducible, frozen once finalized, corrected only by
credit notes, downloadable as HTML and CSV, and visible to nobody else."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from tests.fixtures.factories import Tenant
from tests.integration.billing.conftest import (
    HOUR,
    RUNS,
    Client,
    day_hour,
    gpu_usage,
    must,
    store,
    token_usage,
)


async def _run(client: Client, operator: dict[str, str], start: Any, end: Any) -> Any:
    body = {"start": start.isoformat(), "end": end.isoformat()}
    return await must(client.post(RUNS, json=body, headers=operator))


async def _invoices(client: Client, org: Tenant, auth: dict[str, str]) -> list[Any]:
    invoices: list[Any] = await must(
        client.get(f"/api/v1/orgs/{org.org_id}/invoices", headers=auth)
    )
    return invoices


async def _profile(client: Client, org: Tenant, auth: dict[str, str], **body: str) -> None:
    body = {
        "legal_name": "Érable Inc.",
        "country": "CA",
        "subdivision": "QC",
        "email": "ap@erable.test",
        **body,
    }
    await must(client.put(f"/api/v1/orgs/{org.org_id}/billing/profile", json=body, headers=auth))


class TestRating:
    async def test_gpu_hours_and_tokens_become_lines_with_quebec_taxes(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        operator: dict[str, str],
        biller: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        at = day_hour(clock)
        await _profile(client, customer, biller)
        await store(
            db,
            [
                gpu_usage(customer, "t1", at, 5400),  # 1.5 H100-hours at 4.00
                token_usage(customer, "g1", at, "tokens_in", 2_000_000),  # 2 M at 0.20
                token_usage(customer, "g2", at, "tokens_out", 500_000),  # 0.5 M at 0.60
            ],
            clock.now(),
        )

        result = await _run(client, operator, at, at + 2 * HOUR)

        assert result["drafts"] == 1
        [invoice] = await _invoices(client, customer, biller)
        detail = await must(
            client.get(f"/api/v1/orgs/{customer.org_id}/invoices/{invoice['id']}", headers=biller)
        )
        amounts = sorted(Decimal(line["amount"]) for line in detail["lines"])
        assert amounts == [Decimal("0.30"), Decimal("0.40"), Decimal("6.00")]
        assert Decimal(detail["subtotal"]) == Decimal("6.70")
        assert {line["tax_rule"] for line in detail["lines"]} == {"Québec: GST 5% + QST 9.975%"}
        # per line, half-even to the cent: 0.8985 -> 0.90, 0.0599 -> 0.06, 0.044925 -> 0.04
        assert Decimal(detail["tax"]) == Decimal("1.00")
        assert detail["status"] == "draft"
        assert detail["number"] is None

    async def test_night_hours_are_billed_at_the_night_rate(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        operator: dict[str, str],
        biller: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        night = day_hour(clock).replace(hour=7)  # 02:00 or 03:00 in Toronto
        await store(db, [gpu_usage(customer, "n1", night, 3600)], clock.now())

        await _run(client, operator, night, night + HOUR)

        [invoice] = await _invoices(client, customer, biller)
        detail = await must(
            client.get(f"/api/v1/orgs/{customer.org_id}/invoices/{invoice['id']}", headers=biller)
        )
        [line] = detail["lines"]
        assert Decimal(line["unit_price"]) == Decimal("2.00")
        assert "night rate" in line["description"]

    async def test_running_again_on_the_same_usage_changes_nothing(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        operator: dict[str, str],
        biller: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        at = day_hour(clock)
        await store(db, [gpu_usage(customer, "t1", at, 3600)], clock.now())
        await _run(client, operator, at, at + HOUR)
        [first] = await _invoices(client, customer, biller)

        again = await _run(client, operator, at, at + HOUR)

        [second] = await _invoices(client, customer, biller)
        assert (again["drafts"], again["unchanged"]) == (0, 1)
        assert second["digest"] == first["digest"]
        assert second["id"] == first["id"]


class TestLifecycle:
    async def test_finalized_invoices_never_change_and_late_usage_is_refused(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        operator: dict[str, str],
        biller: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        at = day_hour(clock)
        await store(db, [gpu_usage(customer, "t1", at, 3600)], clock.now())
        await _run(client, operator, at, at + HOUR)
        [draft] = await _invoices(client, customer, biller)

        final = await must(
            client.post(f"/api/v1/billing/invoices/{draft['id']}/finalize", headers=operator)
        )
        await store(db, [gpu_usage(customer, "t2", at, 1800, tenancy="ten_b")], clock.now())
        rerun = await _run(client, operator, at, at + HOUR)
        late = await client.post(
            "/api/v1/metering/events",
            headers=operator,
            json={
                "events": [
                    {
                        "id": "late-1",
                        "source": "partner",
                        "org_id": customer.org_id,
                        "type": "gpu_seconds",
                        "value": "60",
                        "window_start": at.isoformat(),
                        "window_end": (at + timedelta(minutes=1)).isoformat(),
                    }
                ]
            },
        )

        assert final["status"] == "finalized"
        assert final["number"].startswith("INV-")
        assert (rerun["finalized_kept"], rerun["drafts"]) == (1, 0)
        [still] = await _invoices(client, customer, biller)
        assert (still["total"], still["digest"]) == (final["total"], final["digest"])
        assert late.status_code == 400
        assert late.json()["errors"][0]["reason"].startswith("that period is invoiced")

    async def test_credits_are_drawn_at_finalization_and_returned_on_void(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        operator: dict[str, str],
        biller: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        at = day_hour(clock)
        await store(db, [gpu_usage(customer, "t1", at, 36000)], clock.now())  # 40.00 + tax
        await must(
            client.post(
                f"/api/v1/billing/orgs/{customer.slug}/credits",
                headers=operator,
                json={"currency": "CAD", "amount": "25", "reason": "welcome"},
            ),
            201,
        )
        await _run(client, operator, at, at + HOUR)
        [draft] = await _invoices(client, customer, biller)

        final = await must(
            client.post(f"/api/v1/billing/invoices/{draft['id']}/finalize", headers=operator)
        )
        credits_after_finalize = await must(
            client.get(f"/api/v1/orgs/{customer.org_id}/billing/credits", headers=biller)
        )
        voided = await must(
            client.post(
                f"/api/v1/billing/invoices/{draft['id']}/void",
                headers=operator,
                json={"reason": "wrong entity"},
            )
        )
        credits_after_void = await must(
            client.get(f"/api/v1/orgs/{customer.org_id}/billing/credits", headers=biller)
        )

        assert Decimal(final["credits_applied"]) == Decimal(25)
        assert Decimal(final["amount_due"]) == Decimal(final["total"]) - 25
        assert Decimal(credits_after_finalize[0]["remaining"]) == 0
        assert voided["status"] == "void"
        assert Decimal(credits_after_void[0]["remaining"]) == 25

    async def test_a_paid_invoice_is_corrected_by_a_credit_note_not_an_edit(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        operator: dict[str, str],
        biller: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        at = day_hour(clock)
        await store(db, [gpu_usage(customer, "t1", at, 3600)], clock.now())
        await _run(client, operator, at, at + HOUR)
        [draft] = await _invoices(client, customer, biller)
        invoice = f"/api/v1/billing/invoices/{draft['id']}"
        await must(client.post(f"{invoice}/finalize", headers=operator))
        paid = await must(client.post(f"{invoice}/paid", headers=operator))

        refused = await client.post(f"{invoice}/void", headers=operator, json={"reason": "x"})
        too_much = await client.post(
            f"{invoice}/credit-notes", headers=operator, json={"amount": "4.01", "reason": "outage"}
        )
        note = await must(
            client.post(
                f"{invoice}/credit-notes",
                headers=operator,
                json={"amount": "1.00", "reason": "outage"},
            ),
            201,
        )

        assert paid["status"] == "paid"
        assert refused.status_code == 409
        assert too_much.status_code == 400
        assert too_much.json()["errors"][0]["field"] == "body.amount"
        assert (note["kind"], note["status"], note["corrects_id"]) == (
            "credit_note",
            "finalized",
            draft["id"],
        )
        assert note["number"].startswith("CN-")
        assert Decimal(note["total"]) == Decimal("1.05")  # no profile: domestic GST 5 %
        [again] = [i for i in await _invoices(client, customer, biller) if i["id"] == draft["id"]]
        assert (again["status"], again["total"]) == ("paid", paid["total"])


class TestDocuments:
    async def test_html_and_csv_carry_the_same_lines(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        operator: dict[str, str],
        biller: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        at = day_hour(clock)
        await _profile(client, customer, biller, legal_name="=Érable Inc.")
        await store(
            db,
            [
                gpu_usage(customer, "t1", at, 7200),
                token_usage(customer, "g1", at, "tokens_out", 1_000_000),
            ],
            clock.now(),
        )
        await _run(client, operator, at, at + HOUR)
        [draft] = await _invoices(client, customer, biller)
        await must(
            client.post(f"/api/v1/billing/invoices/{draft['id']}/finalize", headers=operator)
        )
        url = f"/api/v1/orgs/{customer.org_id}/invoices/{draft['id']}/document"

        html = await client.get(url, headers=biller)
        sheet = await client.get(url, params={"format": "csv"}, headers=biller)

        assert html.headers["content-type"].startswith("text/html")
        assert "8.00 CAD" in html.text  # 2 H100-hours at 4.00
        assert "=Érable Inc." in html.text  # escaped, shown as written
        assert "Québec: GST 5% + QST 9.975%" in html.text
        rows = list(csv.DictReader(io.StringIO(sheet.text)))
        assert sheet.headers["content-disposition"].endswith('.csv"')
        assert sorted(Decimal(r["amount"]) for r in rows) == [Decimal("0.60"), Decimal("8.00")]


class TestIsolation:
    async def test_another_organization_sees_no_invoice(
        self,
        client: Client,
        db: AsyncSession,
        clock: OffsetClock,
        customer: Tenant,
        other: Tenant,
        operator: dict[str, str],
        biller: dict[str, str],
        book: dict[str, Any],
    ) -> None:
        from control_plane.identity.roles import TenantRole
        from tests.fixtures.factories import signed_in

        at = day_hour(clock)
        await store(db, [gpu_usage(customer, "t1", at, 3600)], clock.now())
        await _run(client, operator, at, at + HOUR)
        [draft] = await _invoices(client, customer, biller)
        intruder = await signed_in(client, other.accounts[TenantRole.OWNER])

        as_own = await client.get(
            f"/api/v1/orgs/{other.org_id}/invoices/{draft['id']}", headers=intruder
        )
        as_theirs = await client.get(
            f"/api/v1/orgs/{customer.org_id}/invoices/{draft['id']}", headers=intruder
        )
        member = await signed_in(client, customer.accounts[TenantRole.MEMBER])
        as_member = await client.get(f"/api/v1/orgs/{customer.org_id}/invoices", headers=member)

        assert (as_own.status_code, as_theirs.status_code) == (404, 404)
        assert as_member.status_code == 403
        assert await _invoices(client, other, intruder) == []


class TestProfileInput:
    async def test_control_characters_are_refused_with_the_field_named(
        self, client: Client, customer: Tenant, biller: dict[str, str]
    ) -> None:
        url = f"/api/v1/orgs/{customer.org_id}/billing/profile"
        good = {"legal_name": "Érable Inc.", "country": "CA", "email": "ap@erable.test"}
        for field, value in (("legal_name", "A\x00B"), ("tax_id", "12\x00"),
                             ("email", "a\x00@b.ca")):  # fmt: skip
            response = await client.put(url, json={**good, field: value}, headers=biller)

            assert response.status_code == 400, (field, response.text)
            assert response.json()["errors"][0]["field"] == f"body.{field}"
        assert (await client.get(url, headers=biller)).json() is None  # nothing stored
