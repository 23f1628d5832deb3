"""Stripe's webhooks: verified, stored by event id, applied once and in order.

A delivery is verified with ``stripe.Webhook.construct_event`` against the endpoint's
signing secret, which also refuses a timestamp outside the tolerance (five minutes), so
a captured delivery replayed later fails. The event is then stored in ``stripe_event``
by its id: a second delivery of the same id is acknowledged and not handled again.

Stripe does not promise order. Per Stripe object (invoice, customer) ``stripe_sync``
keeps the newest event applied; an event older than that (by Stripe's ``created``) is
stored but not applied. Besides, a payment failure never takes ``paid`` back.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import stripe
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoices.models import Invoice
from billing.outbox.models import StripeEvent
from billing.prices.models import BillingProfile
from billing.stripe.models import StripeCustomer, StripeSync
from control_plane.audit.hints import hint
from control_plane.audit.store import record
from control_plane.clock import Clock
from control_plane.errors import FieldError, InvalidInput, NotFound
from control_plane.settings import Settings

__all__ = ["ACTOR", "receive"]

ACTOR = "stripe"  # the ledger's actor id for what Stripe tells us (actor_kind "system")
_Handler = Callable[[AsyncSession, dict[str, Any], "_Context"], Awaitable[str]]


class _Context:
    def __init__(self, event_id: str, created: datetime, settings: Settings, clock: Clock):
        self.event_id = event_id
        self.created = created
        self.settings = settings
        self.clock = clock

    async def ledger(
        self,
        db: AsyncSession,
        org_id: str,
        action: str,
        target: tuple[str, str],
        outcome: str,
        payload: dict[str, Any],
    ) -> None:
        await record(
            db,
            org_id=org_id,
            region=self.settings.region,
            actor_kind="system",
            actor_id=ACTOR,
            action=action,
            target_type=target[0],
            target_id=target[1],
            request_id=None,
            source_address=None,
            outcome=outcome,
            decision_ref=self.event_id,
            payload=payload,
            at=self.clock.now(),
        )


async def receive(
    db: AsyncSession, *, payload: bytes, signature: str | None, settings: Settings, clock: Clock
) -> str:
    """Verify, store and (once) apply one delivery; what happened, for the answer."""
    if settings.stripe_webhook_secret is None:
        raise NotFound(detail="Stripe webhooks are not configured here.")
    try:
        event = stripe.Webhook.construct_event(
            payload, signature, settings.stripe_webhook_secret.get_secret_value()
        )
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise InvalidInput(
            detail="The Stripe-Signature header does not verify (or is too old).",
            errors=[FieldError("header.Stripe-Signature", str(exc)[:200])],
        ) from exc
    data: dict[str, Any] = json.loads(payload)
    created = datetime.fromtimestamp(int(event.created), UTC)
    hint(db, actor_kind="system", actor_id=ACTOR, target_type="stripe_event", target_id=event.id)
    if not await _store(db, event.id, event.type, created, clock.now()):
        return "duplicate"
    handler = _HANDLERS.get(event.type)
    context = _Context(event.id, created, settings, clock)
    obj = data.get("data", {}).get("object", {})
    outcome = await _in_order(db, obj, context, handler) if handler else "ignored"
    stored = await db.get(StripeEvent, event.id)
    if stored is not None:
        stored.handled_at = clock.now()
        stored.outcome = outcome[:200]
    return outcome


async def _store(
    db: AsyncSession, event_id: str, kind: str, created: datetime, now: datetime
) -> bool:
    """Insert the event unless its id is known; True when it is new."""
    table = cast(Table, StripeEvent.__table__)
    dialect = (await db.connection()).dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .values(
            id=event_id,
            type=kind[:100],
            created=created,
            received_at=now,
            handled_at=None,
            outcome="",
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(table.c.id)
    )
    return (await db.execute(statement)).first() is not None


async def _in_order(
    db: AsyncSession, obj: dict[str, Any], context: _Context, handler: _Handler
) -> str:
    object_id = obj.get("id")
    if not isinstance(object_id, str):
        return "ignored: no object id"
    query = select(StripeSync).where(StripeSync.object_id == object_id)
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    sync = (await db.execute(query)).scalar_one_or_none()
    if sync is not None and sync.event_created > context.created:
        return f"stale: {object_id} already at {sync.event_id}"
    outcome = await handler(db, obj, context)
    if sync is None:
        db.add(
            StripeSync(
                object_id=object_id, event_id=context.event_id, event_created=context.created
            )
        )
    else:
        sync.event_id, sync.event_created = context.event_id, context.created
    return outcome


async def _our_invoice(db: AsyncSession, obj: dict[str, Any]) -> Invoice | None:
    found = await db.execute(select(Invoice).where(Invoice.stripe_invoice_id == obj["id"]))
    return found.scalar_one_or_none()


async def _invoice_paid(db: AsyncSession, obj: dict[str, Any], context: _Context) -> str:
    invoice = await _our_invoice(db, obj)
    if invoice is None:
        return "ignored: not one of our invoices"
    if invoice.status != "finalized":
        return f"ignored: invoice is {invoice.status}"
    paid_at = (obj.get("status_transitions") or {}).get("paid_at")
    invoice.status = "paid"
    invoice.paid_at = datetime.fromtimestamp(int(paid_at), UTC) if paid_at else context.created
    await context.ledger(
        db,
        invoice.org_id,
        "billing.invoice_paid",
        ("invoice", invoice.id),
        "success",
        {"stripe_invoice": obj["id"], "amount_paid": obj.get("amount_paid")},
    )
    return "applied: invoice paid"


async def _invoice_payment_failed(db: AsyncSession, obj: dict[str, Any], context: _Context) -> str:
    invoice = await _our_invoice(db, obj)
    if invoice is None:
        return "ignored: not one of our invoices"
    await context.ledger(
        db,
        invoice.org_id,
        "billing.invoice_payment_failed",
        ("invoice", invoice.id),
        "failed",
        {"stripe_invoice": obj["id"], "attempt_count": obj.get("attempt_count")},
    )
    return f"applied: payment failed, invoice stays {invoice.status}"


async def _customer_updated(db: AsyncSession, obj: dict[str, Any], context: _Context) -> str:
    found = await db.execute(select(StripeCustomer).where(StripeCustomer.customer_id == obj["id"]))
    customer = found.scalar_one_or_none()
    profile = await db.get(BillingProfile, customer.org_id) if customer else None
    if customer is None or profile is None:
        return "ignored: not one of our customers"
    changed = {}
    for field, column in (("email", "email"), ("name", "legal_name")):
        value = obj.get(field)
        if isinstance(value, str) and value and value != getattr(profile, column):
            setattr(profile, column, value)
            changed[column] = value
    if not changed:
        return "applied: nothing changed"
    profile.updated_at = context.clock.now()
    await context.ledger(
        db,
        customer.org_id,
        "billing.profile_updated",
        ("billing_profile", customer.org_id),
        "success",
        {"stripe_customer": obj["id"], "fields": sorted(changed)},
    )
    return "applied: profile " + ", ".join(sorted(changed))


_HANDLERS: dict[str, _Handler] = {
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_payment_failed,
    "customer.updated": _customer_updated,
}
