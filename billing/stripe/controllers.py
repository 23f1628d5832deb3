"""Stripe's webhook endpoint: public (the signature is the authentication), no CSRF."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.ext.asyncio import AsyncSession

from billing.stripe import webhooks
from billing.stripe.schemas import WebhookReceipt
from control_plane.clock import Clock
from control_plane.http.problems import problem_responses
from control_plane.identity.authz import public
from control_plane.settings import Settings

__all__ = ["ROUTES"]


class StripeWebhookController(Controller):
    path = "/api/v1/billing/stripe"
    tags = ["billing"]

    @post(
        "/webhook",
        opt={**public(csrf=False), "audit_action": "billing.stripe_webhook"},
        status_code=HTTP_200_OK,
        summary="Receive a Stripe event (verified with the Stripe-Signature header)",
        include_in_schema=True,
        responses=problem_responses(404),
    )
    async def stripe_webhook(
        self, request: Request[Any, Any, Any], db: AsyncSession, settings: Settings, clock: Clock
    ) -> WebhookReceipt:
        outcome = await webhooks.receive(
            db,
            payload=await request.body(),
            signature=request.headers.get("stripe-signature"),
            settings=settings,
            clock=clock,
        )
        return WebhookReceipt(received=True, outcome=outcome)


ROUTES = [StripeWebhookController]
