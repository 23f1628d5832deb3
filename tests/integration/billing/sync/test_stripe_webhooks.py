"""Stripe's webhooks through the public endpoint: signatures, replays, duplicates, order."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import stripe
from litestar import Litestar
from litestar.testing import AsyncTestClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.invoices.models import Invoice
from billing.outbox.models import StripeEvent
from billing.prices.models import BillingProfile
from billing.stripe.models import StripeCustomer
from control_plane.app import create_app
from control_plane.audit.models import AuditEntryRow
from control_plane.clock import OffsetClock
from control_plane.settings import Settings
from tests.conftest import _empty_tables
from tests.integration.billing.sync.conftest import START, make_customer, make_invoice

URL = "/api/v1/billing/stripe/webhook"
SECRET = "whsec_test_0123456789"
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def app(settings: Settings, clock: OffsetClock) -> AsyncIterator[Litestar]:
    """The app with a Stripe webhook signing secret."""
    configured = settings.model_copy(update={"stripe_webhook_secret": SecretStr(SECRET)})
    application = create_app(configured, clock=clock, configure_logs=False)
    yield application
    await _empty_tables(application)


def event(kind: str, obj: dict[str, Any], *, created: int, event_id: str) -> bytes:
    return json.dumps(
        {"id": event_id, "object": "event", "type": kind, "created": created,
         "data": {"object": obj}, "livemode": False, "api_version": "2025-01-01"}
    ).encode()  # fmt: skip


def signed(body: bytes, *, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, at)
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


async def _pushed_invoice(sessions: Sessions) -> Invoice:
    async with sessions() as db:
        customer = await make_customer(db)
        invoice = await make_invoice(db, customer.org_id)
        row = await db.get(Invoice, invoice.id)
        assert row is not None
        row.stripe_invoice_id = f"in_{invoice.id[-12:]}"
        await db.commit()
        return row


async def _invoice(sessions: Sessions, invoice_id: str) -> Invoice:
    async with sessions() as db:
        row = await db.get(Invoice, invoice_id)
        assert row is not None
        return row


async def _ledger(sessions: Sessions, org_id: str) -> list[tuple[str, str, str | None]]:
    async with sessions() as db:
        rows = await db.execute(
            select(AuditEntryRow.action, AuditEntryRow.actor_kind, AuditEntryRow.actor_id)
            .where(AuditEntryRow.org_id == org_id, AuditEntryRow.action.like("billing.invoice%"))
            .order_by(AuditEntryRow.seq)
        )
        return [(action, kind, actor) for action, kind, actor in rows]


class TestSignature:
    async def test_a_signed_invoice_paid_marks_our_invoice_paid_with_a_ledger_entry(
        self, client: AsyncTestClient[Litestar], sessions: Sessions
    ) -> None:
        invoice = await _pushed_invoice(sessions)
        paid_at = int(START.timestamp()) + 3600
        obj = {"id": invoice.stripe_invoice_id, "object": "invoice", "amount_paid": 9891,
               "status_transitions": {"paid_at": paid_at}}  # fmt: skip
        body = event("invoice.paid", obj, created=int(time.time()), event_id="evt_paid_1")

        answer = await client.post(URL, content=body, headers=signed(body))

        assert answer.status_code == 200, answer.text
        assert answer.json() == {"received": True, "outcome": "applied: invoice paid"}
        ours = await _invoice(sessions, invoice.id)
        assert ours.status == "paid"
        assert ours.paid_at is not None
        assert int(ours.paid_at.timestamp()) == paid_at
        assert await _ledger(sessions, invoice.org_id) == [
            ("billing.invoice_paid", "system", "stripe")
        ]

    async def test_a_forged_signature_is_refused_and_changes_nothing(
        self, client: AsyncTestClient[Litestar], sessions: Sessions
    ) -> None:
        invoice = await _pushed_invoice(sessions)
        obj = {"id": invoice.stripe_invoice_id, "object": "invoice"}
        body = event("invoice.paid", obj, created=int(time.time()), event_id="evt_forged")

        forged = await client.post(URL, content=body, headers=signed(body, secret="whsec_guess"))
        unsigned = await client.post(
            URL, content=body, headers={"Content-Type": "application/json"}
        )

        for answer in (forged, unsigned):
            assert answer.status_code == 400
            assert answer.headers["content-type"].startswith("application/problem+json")
        assert (await _invoice(sessions, invoice.id)).status == "finalized"
        async with sessions() as db:
            assert await db.get(StripeEvent, "evt_forged") is None

    async def test_a_replayed_old_delivery_is_refused(
        self, client: AsyncTestClient[Litestar], sessions: Sessions
    ) -> None:
        invoice = await _pushed_invoice(sessions)
        obj = {"id": invoice.stripe_invoice_id, "object": "invoice"}
        sent_at = int(time.time()) - 3600  # captured an hour ago, valid signature then
        body = event("invoice.paid", obj, created=sent_at, event_id="evt_old")

        answer = await client.post(URL, content=body, headers=signed(body, at=sent_at))

        assert answer.status_code == 400
        assert "too old" in answer.json()["detail"]
        assert (await _invoice(sessions, invoice.id)).status == "finalized"


class TestOnce:
    async def test_a_duplicate_delivery_is_acknowledged_and_not_handled_again(
        self, client: AsyncTestClient[Litestar], sessions: Sessions
    ) -> None:
        invoice = await _pushed_invoice(sessions)
        obj = {"id": invoice.stripe_invoice_id, "object": "invoice", "attempt_count": 1}
        body = event("invoice.payment_failed", obj, created=int(time.time()), event_id="evt_f1")

        first = await client.post(URL, content=body, headers=signed(body))
        again = await client.post(URL, content=body, headers=signed(body))

        assert first.json()["outcome"] == "applied: payment failed, invoice stays finalized"
        assert again.status_code == 200
        assert again.json()["outcome"] == "duplicate"
        assert await _ledger(sessions, invoice.org_id) == [
            ("billing.invoice_payment_failed", "system", "stripe")
        ]


class TestOrder:
    async def test_a_payment_failure_after_payment_does_not_unpay(
        self, client: AsyncTestClient[Litestar], sessions: Sessions
    ) -> None:
        invoice = await _pushed_invoice(sessions)
        obj = {"id": invoice.stripe_invoice_id, "object": "invoice"}
        now = int(time.time())
        paid = event("invoice.paid", obj, created=now - 60, event_id="evt_o_paid")
        failed_late = event("invoice.payment_failed", obj, created=now, event_id="evt_o_fail")

        await client.post(URL, content=paid, headers=signed(paid))
        answer = await client.post(URL, content=failed_late, headers=signed(failed_late))

        assert answer.status_code == 200
        assert (await _invoice(sessions, invoice.id)).status == "paid"

    async def test_an_event_older_than_the_last_applied_is_stored_but_not_applied(
        self, client: AsyncTestClient[Litestar], sessions: Sessions
    ) -> None:
        invoice = await _pushed_invoice(sessions)
        obj = {"id": invoice.stripe_invoice_id, "object": "invoice"}
        now = int(time.time())
        failed = event("invoice.payment_failed", obj, created=now, event_id="evt_s_fail")
        older_paid = event("invoice.paid", obj, created=now - 120, event_id="evt_s_paid")

        await client.post(URL, content=failed, headers=signed(failed))
        answer = await client.post(URL, content=older_paid, headers=signed(older_paid))

        assert answer.json()["outcome"].startswith("stale:")
        assert (await _invoice(sessions, invoice.id)).status == "finalized"
        async with sessions() as db:
            stored = await db.get(StripeEvent, "evt_s_paid")
            assert stored is not None
            assert stored.outcome.startswith("stale:")


async def test_customer_updated_refreshes_the_billing_profile(
    client: AsyncTestClient[Litestar], sessions: Sessions
) -> None:
    async with sessions() as db:
        customer = await make_customer(db, "Old Name Ltd")
        db.add(StripeCustomer(org_id=customer.org_id, customer_id="cus_profile1",
                              created_at=START, updated_at=START))  # fmt: skip
        await db.commit()
    obj = {"id": "cus_profile1", "object": "customer", "name": "New Name Ltd",
           "email": "ap@newname.test"}  # fmt: skip
    body = event("customer.updated", obj, created=int(time.time()), event_id="evt_cus_1")

    answer = await client.post(URL, content=body, headers=signed(body))

    assert answer.json()["outcome"] == "applied: profile email, legal_name"
    async with sessions() as db:
        profile = await db.get(BillingProfile, customer.org_id)
        assert profile is not None
        assert (profile.legal_name, profile.email) == ("New Name Ltd", "ap@newname.test")
