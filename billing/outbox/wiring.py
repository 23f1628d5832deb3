"""The outbox dispatcher with its senders, as the composition root starts it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.outbox.dispatch import Dispatcher, Sender
from billing.outbox.email import EmailSender
from billing.outbox.webhook import WebhookSender
from billing.stripe.push import StripePush
from control_plane.clock import Clock
from control_plane.settings import Settings

__all__ = ["build_dispatcher", "senders"]


def senders(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings
) -> dict[str, Sender]:
    """Topic -> sender. Without a Stripe key the ``stripe.*`` topics have no sender, so
    such messages are marked dead at once (billing works without Stripe)."""
    chosen: dict[str, Sender] = {
        "webhook": WebhookSender(sessionmaker, clock, settings),
        "email": EmailSender(settings),
    }
    if settings.stripe_api_key is not None:
        push = StripePush(sessionmaker, clock, settings)
        chosen["stripe.customer"] = push.customer
        chosen["stripe.invoice"] = push.invoice
    return chosen


def build_dispatcher(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings
) -> Dispatcher:
    return Dispatcher(sessionmaker, clock, senders(sessionmaker, clock, settings))
