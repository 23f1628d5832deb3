"""One Stripe client per delivery, from settings, and what Stripe's errors mean for the
outbox (retry later, or dead at once)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import stripe

from billing.outbox.dispatch import PermanentError
from control_plane.settings import Settings

__all__ = ["stripe_client"]

# A request Stripe refused for what it is (bad parameters, an idempotency key reused with
# other parameters, no permission) fails the same way every time: no retry.
_PERMANENT = (stripe.InvalidRequestError, stripe.IdempotencyError, stripe.PermissionError)


@asynccontextmanager
async def stripe_client(settings: Settings) -> AsyncIterator[stripe.StripeClient]:
    """A client on ``settings.stripe_api_base`` (Stripe itself when unset).

    The SDK's own network retries are off: the outbox retries, with the same idempotency
    keys, on its schedule. Its HTTPX client is made here and closed on exit, so a
    delivery never shares a connection pool with another event loop.
    """
    if settings.stripe_api_key is None:
        raise PermanentError("Stripe is not configured (CP_STRIPE_API_KEY)")
    http = stripe.HTTPXClient(timeout=30, allow_sync_methods=False)
    client = stripe.StripeClient(
        settings.stripe_api_key.get_secret_value(),
        base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else {},
        max_network_retries=0,
        http_client=http,
    )
    try:
        yield client
    except _PERMANENT as exc:
        raise PermanentError(f"Stripe refused: {exc.user_message or exc}") from exc
    finally:
        await cast(Any, http).close_async()  # untyped in the SDK
