"""The ``stripe.customer`` and ``stripe.invoice`` senders: our records pushed to Stripe.

Every call carries an idempotency key derived from the outbox key (``<key>:item:3``,
``<key>:invoice`` ...), so a retry after a lost answer or a crash replays Stripe's first
answer instead of creating a second object. What we learn (the customer id, the Stripe
invoice id) is written back in the transaction that marks the message done, guarded by
the lease.

A finalized invoice goes to Stripe as one invoice item per line, one per tax rule and
rate, and a negative item for prepaid credits drawn; then a Stripe invoice that takes the
customer's pending items, finalized. So the Stripe invoice's total is our amount due
(``total_minor - credits_minor``); a mismatch stops the push (dead, for an operator).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import stripe
from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.invoices.models import Invoice, InvoiceLine
from billing.outbox.dispatch import Claimed, PermanentError, WriteBack
from billing.prices.models import BillingProfile
from billing.stripe.client import stripe_client
from billing.stripe.models import StripeCustomer
from control_plane.clock import Clock
from control_plane.settings import Settings

__all__ = ["StripePush", "stripe_items"]

_PUSHABLE = frozenset({"finalized", "paid"})


@dataclass(frozen=True, slots=True)
class Item:
    amount_minor: int
    description: str
    metadata: dict[str, str]


def stripe_items(invoice: Invoice, lines: Sequence[InvoiceLine]) -> list[Item]:
    """The Stripe invoice items that add up to ``invoice``'s amount due."""
    items = [
        Item(
            line.amount_minor,
            f"{line.description} ({_plain(line.quantity)} {line.unit})",
            {"invoice_id": invoice.id, "line_id": line.id},
        )
        for line in lines
    ]
    taxes: dict[tuple[str, Decimal], int] = {}
    for line in lines:
        if line.tax_minor:
            group = (line.tax_rule, line.tax_rate)
            taxes[group] = taxes.get(group, 0) + line.tax_minor
    for (rule, rate), amount in taxes.items():
        label = f"Tax: {rule} ({_plain(rate * 100)}%)" if rule else f"Tax ({_plain(rate * 100)}%)"
        items.append(Item(amount, label, {"invoice_id": invoice.id, "tax_rule": rule}))
    if invoice.credits_minor:
        items.append(
            Item(-invoice.credits_minor, "Prepaid credits applied", {"invoice_id": invoice.id})
        )
    return items


class StripePush:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.settings = settings

    async def customer(self, message: Claimed) -> WriteBack | None:
        """Create or update the organization's Stripe customer from its billing profile."""
        org_id = str(message.payload.get("org_id"))
        async with self.sessionmaker() as db:
            profile = await db.get(BillingProfile, org_id)
            known = await db.get(StripeCustomer, org_id)
            customer_id = known.customer_id if known else None
        if profile is None:
            raise PermanentError(f"organization {org_id} has no billing profile")
        params = _customer_params(org_id, profile)
        async with stripe_client(self.settings) as client:
            if customer_id is not None:
                await client.v1.customers.update_async(
                    customer_id, cast(Any, params), {"idempotency_key": f"{message.key}:update"}
                )
                return None
            created = await client.v1.customers.create_async(
                cast(Any, params), {"idempotency_key": f"{message.key}:create"}
            )
        return self._remember_customer(org_id, created.id)

    async def invoice(self, message: Claimed) -> WriteBack | None:
        """Push a finalized invoice (once: an invoice with a Stripe id is left alone)."""
        invoice_id = str(message.payload.get("invoice_id"))
        async with self.sessionmaker() as db:
            invoice = await db.get(Invoice, invoice_id)
            if invoice is None:
                raise PermanentError(f"invoice {invoice_id} not found")
            if invoice.stripe_invoice_id:
                return None
            if invoice.kind != "invoice" or invoice.status not in _PUSHABLE:
                raise PermanentError(f"{invoice.kind} {invoice_id} is {invoice.status}: not pushed")
            lines = list(
                (
                    await db.execute(
                        select(InvoiceLine)
                        .where(InvoiceLine.invoice_id == invoice_id)
                        .order_by(InvoiceLine.position)
                    )
                ).scalars()
            )
            profile = await db.get(BillingProfile, invoice.org_id)
            known = await db.get(StripeCustomer, invoice.org_id)
            customer_id = known.customer_id if known else None
        items = stripe_items(invoice, lines)
        due = sum(item.amount_minor for item in items)
        if due != invoice.amount_due_minor:
            raise PermanentError(f"lines add up to {due}, invoice says {invoice.amount_due_minor}")
        async with stripe_client(self.settings) as client:
            new_customer = None
            if customer_id is None:
                if profile is None:
                    raise PermanentError(f"organization {invoice.org_id} has no billing profile")
                created = await client.v1.customers.create_async(
                    cast(Any, _customer_params(invoice.org_id, profile)),
                    {"idempotency_key": f"{message.key}:customer"},
                )
                customer_id = new_customer = created.id
            pushed = await _push(client, message.key, customer_id, invoice, items)
        if pushed.total != due:
            raise PermanentError(f"Stripe invoice {pushed.id} totals {pushed.total}, ours {due}")
        remember = self._remember_customer(invoice.org_id, new_customer) if new_customer else None
        stripe_id = pushed.id

        async def write_back(db: AsyncSession) -> None:
            if remember is not None:
                await remember(db)
            await db.execute(
                update(Invoice)
                .where(Invoice.id == invoice_id, Invoice.stripe_invoice_id.is_(None))
                .values(stripe_invoice_id=stripe_id)
            )

        return write_back

    def _remember_customer(self, org_id: str, customer_id: str) -> WriteBack:
        now = self.clock.now()

        async def write_back(db: AsyncSession) -> None:
            table = cast(Table, StripeCustomer.__table__)
            dialect = (await db.connection()).dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            await db.execute(
                insert(table)
                .values(org_id=org_id, customer_id=customer_id, created_at=now, updated_at=now)
                .on_conflict_do_nothing(index_elements=["org_id"])
            )

        return write_back


async def _push(
    client: stripe.StripeClient, key: str, customer_id: str, invoice: Invoice, items: list[Item]
) -> stripe.Invoice:
    currency = invoice.currency.lower()
    for n, item in enumerate(items):
        await client.v1.invoice_items.create_async(
            {
                "customer": customer_id,
                "amount": item.amount_minor,
                "currency": currency,
                "description": item.description,
                "metadata": item.metadata,
            },
            {"idempotency_key": f"{key}:item:{n}"},
        )
    draft = await client.v1.invoices.create_async(
        {
            "customer": customer_id,
            "description": f"Invoice {invoice.number or invoice.id}",
            "metadata": {"invoice_id": invoice.id, "number": invoice.number or ""},
            "pending_invoice_items_behavior": "include",
        },
        {"idempotency_key": f"{key}:invoice"},
    )
    assert draft.id is not None  # Stripe always answers with an id
    if draft.status != "draft":
        return draft
    return await client.v1.invoices.finalize_invoice_async(
        draft.id, options={"idempotency_key": f"{key}:finalize"}
    )


def _customer_params(org_id: str, profile: BillingProfile) -> dict[str, Any]:
    return {
        "name": profile.legal_name,
        "email": profile.email,
        "address": {"country": profile.country},
        "metadata": {"org_id": org_id},
    }


def _plain(value: Decimal) -> str:
    """``1.500000`` as ``1.5``, ``2E+1`` as ``20``."""
    return format(value.normalize(), "f")
