"""Customers and finalized invoices pushed to Stripe (localstripe, real SDK) through the
outbox: the Stripe invoice adds up to ours, and retries never create a second one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import stripe
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.invoices.models import Invoice
from billing.outbox.dispatch import Dispatcher
from billing.outbox.models import OutboxMessage
from billing.outbox.service import enqueue
from billing.outbox.wiring import senders
from billing.prices.models import BillingProfile
from billing.stripe.models import StripeCustomer
from control_plane.clock import FrozenClock
from control_plane.settings import Settings
from tests.conftest import need_peer
from tests.fixtures.peers.localstripe import LocalStripe, localstripe_available
from tests.integration.billing.sync.conftest import make_customer, make_invoice

pytestmark = pytest.mark.peer_localstripe
Sessions = async_sessionmaker[AsyncSession]


def _on(settings: Settings, peer: LocalStripe) -> Settings:
    return settings.model_copy(
        update={"stripe_api_key": SecretStr(peer.api_key), "stripe_api_base": peer.api_base}
    )


@pytest.fixture
async def stripe_api(localstripe: LocalStripe) -> AsyncIterator[stripe.StripeClient]:
    """The SDK as an operator would use it to look at Stripe's side."""
    http = stripe.HTTPXClient(allow_sync_methods=False)
    yield stripe.StripeClient(
        localstripe.api_key, base_addresses={"api": localstripe.api_base}, http_client=http
    )
    await http.close_async()


def _dispatcher(sessions: Sessions, clock: FrozenClock, settings: Settings) -> Dispatcher:
    return Dispatcher(sessions, clock, senders(sessions, clock, settings), base_delay_seconds=5)


async def _push(
    sessions: Sessions, clock: FrozenClock, topic: str, key: str, **payload: str
) -> None:
    async with sessions() as db:
        await enqueue(db, key=key, topic=topic, org_id=None, payload=payload, now=clock.now())
        await db.commit()


class TestCustomer:
    async def test_the_customer_is_created_once_then_updated(
        self,
        sessions: Sessions,
        frozen: FrozenClock,
        settings: Settings,
        localstripe: LocalStripe,
        stripe_api: stripe.StripeClient,
    ) -> None:
        settings = _on(settings, localstripe)
        async with sessions() as db:
            customer = await make_customer(db, "Nordljus AB")
        dispatcher = _dispatcher(sessions, frozen, settings)

        await _push(sessions, frozen, "stripe.customer", "cus-1", org_id=customer.org_id)
        assert await dispatcher.drain() == {"done": 1}
        async with sessions() as db:
            known = await db.get(StripeCustomer, customer.org_id)
            assert known is not None
            profile_email = "ap@nordljus.test"
            profile = await db.get(BillingProfile, customer.org_id)
            assert profile is not None
            profile.email = profile_email
            await db.commit()
        await _push(sessions, frozen, "stripe.customer", "cus-2", org_id=customer.org_id)
        assert await dispatcher.drain() == {"done": 1}

        seen = await stripe_api.v1.customers.retrieve_async(known.customer_id)
        assert (seen.name, seen.email) == ("Nordljus AB", profile_email)
        assert seen.metadata["org_id"] == customer.org_id
        everyone = await stripe_api.v1.customers.list_async({"email": profile_email})
        assert [c.id for c in everyone.data] == [known.customer_id]


class TestInvoice:
    async def test_a_finalized_invoice_arrives_with_our_total(
        self,
        sessions: Sessions,
        frozen: FrozenClock,
        settings: Settings,
        localstripe: LocalStripe,
        stripe_api: stripe.StripeClient,
    ) -> None:
        settings = _on(settings, localstripe)
        async with sessions() as db:
            customer = await make_customer(db)
            invoice = await make_invoice(db, customer.org_id)

        await _push(sessions, frozen, "stripe.invoice", f"inv-{invoice.id}", invoice_id=invoice.id)
        assert await _dispatcher(sessions, frozen, settings).drain() == {"done": 1}

        async with sessions() as db:
            ours = await db.get(Invoice, invoice.id)
            assert ours is not None
            assert ours.stripe_invoice_id is not None
        theirs = await stripe_api.v1.invoices.retrieve_async(ours.stripe_invoice_id)
        assert theirs.total == ours.total_minor == 8760 + 245 + 874 + 12
        assert theirs.status == "open"
        assert theirs.currency == "cad"
        assert theirs.metadata["invoice_id"] == invoice.id
        lines = sorted((line.description, line.amount) for line in theirs.lines.data)
        assert ("Tax: CA GST (5%)", 12) in lines
        assert ("H100 GPU time, ca-qc-1 (36.5 GPU-hour)", 8760) in lines

    async def test_credits_drawn_lower_the_amount_due_in_stripe_too(
        self,
        sessions: Sessions,
        frozen: FrozenClock,
        settings: Settings,
        localstripe: LocalStripe,
        stripe_api: stripe.StripeClient,
    ) -> None:
        settings = _on(settings, localstripe)
        async with sessions() as db:
            customer = await make_customer(db)
            invoice = await make_invoice(db, customer.org_id, credits_minor=1000)

        await _push(sessions, frozen, "stripe.invoice", f"inv-{invoice.id}", invoice_id=invoice.id)
        assert await _dispatcher(sessions, frozen, settings).drain() == {"done": 1}

        async with sessions() as db:
            ours = await db.get(Invoice, invoice.id)
            assert ours is not None
            assert ours.stripe_invoice_id is not None
        theirs = await stripe_api.v1.invoices.retrieve_async(ours.stripe_invoice_id)
        assert theirs.amount_due == ours.amount_due_minor == ours.total_minor - 1000

    async def test_a_draft_invoice_is_not_pushed_and_says_why(
        self, sessions: Sessions, frozen: FrozenClock, settings: Settings, localstripe: LocalStripe
    ) -> None:
        settings = _on(settings, localstripe)
        async with sessions() as db:
            customer = await make_customer(db)
            invoice = await make_invoice(db, customer.org_id)
            draft = await db.get(Invoice, invoice.id)
            assert draft is not None
            draft.status = "draft"
            await db.commit()

        await _push(sessions, frozen, "stripe.invoice", "inv-draft", invoice_id=invoice.id)
        assert await _dispatcher(sessions, frozen, settings).drain() == {"dead": 1}


class _StopAfter(httpx.AsyncBaseTransport):
    """Lets ``calls`` requests through to localstripe, then stops it (a crash of Stripe's
    side, or of the network, in the middle of a push)."""

    def __init__(self, peer: LocalStripe, calls: int) -> None:
        self.peer = peer
        self.left = calls
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.left == 0:
            self.peer.stop()
        self.left -= 1
        return await self.inner.handle_async_request(request)


async def test_a_push_cut_short_by_stripe_going_away_does_not_duplicate_when_retried(
    sessions: Sessions,
    frozen: FrozenClock,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    need_peer(localstripe_available())
    with LocalStripe() as peer:
        settings = _on(settings, peer)
        async with sessions() as db:
            customer = await make_customer(db)
            invoice = await make_invoice(db, customer.org_id)
        await _push(sessions, frozen, "stripe.invoice", f"inv-{invoice.id}", invoice_id=invoice.id)
        dispatcher = _dispatcher(sessions, frozen, settings)

        # customer, then 2 of the 4 invoice items, then Stripe is gone
        cut = _StopAfter(peer, calls=3)
        real_client = httpx.AsyncClient
        monkeypatch.setattr(httpx, "AsyncClient", lambda **kw: real_client(transport=cut, **kw))
        assert await dispatcher.drain() == {"retry": 1}
        monkeypatch.setattr(httpx, "AsyncClient", real_client)

        peer.start(from_scratch=False)  # back, with what it had stored
        frozen.advance(3600)
        assert await dispatcher.drain() == {"done": 1}

        async with sessions() as db:
            ours = await db.get(Invoice, invoice.id)
            assert ours is not None
            assert ours.stripe_invoice_id is not None
            message = await db.get(OutboxMessage, await _message_id(db, f"inv-{invoice.id}"))
            assert message is not None
            assert message.attempts == 2
        http = stripe.HTTPXClient(allow_sync_methods=False)
        api = stripe.StripeClient(peer.api_key, base_addresses={"api": peer.api_base},
                                  http_client=http)  # fmt: skip
        try:
            theirs = await api.v1.invoices.retrieve_async(ours.stripe_invoice_id)
            customers = await api.v1.customers.list_async()
            invoices = await api.v1.invoices.list_async()
        finally:
            await http.close_async()
        assert theirs.total == ours.total_minor
        assert len(theirs.lines.data) == 4  # two lines, QST, GST: none twice
        assert len(customers.data) == 1
        assert len(invoices.data) == 1


async def _message_id(db: AsyncSession, key: str) -> str:
    found = await db.execute(select(OutboxMessage.id).where(OutboxMessage.key == key))
    return found.scalar_one()
