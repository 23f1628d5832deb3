"""Outbox API for operators: deliveries (webhooks, e-mail, Stripe) waiting, done or given
up on, and sending a dead one again."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.ext.asyncio import AsyncSession

from billing.outbox import admin
from billing.outbox.schemas import DeliveryCounts, DeliveryRead, DeliveryState
from control_plane.clock import Clock
from control_plane.identity.authz import ProviderScope, provider
from control_plane.identity.roles import ProviderPermission

MessageId = Annotated[str, Parameter(max_length=40)]
OPERATE = provider(ProviderPermission.BILLING_OPERATE)


class OutboxController(Controller):
    path = "/api/v1/billing/outbox"
    tags = ["billing"]

    @get("/", opt=OPERATE, summary="Deliveries in a state (dead by default), newest first")
    async def list_deliveries(
        self,
        operator: ProviderScope,
        db: AsyncSession,
        delivery_state: Annotated[DeliveryState, QueryParameter(name="state")] = "dead",
        topic: Annotated[str | None, Parameter(max_length=40)] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> list[DeliveryRead]:
        return await admin.list_deliveries(db, delivery_state, topic=topic, limit=limit)

    @get("/counts", opt=OPERATE, summary="How many deliveries are pending, dead and done")
    async def delivery_counts(self, operator: ProviderScope, db: AsyncSession) -> DeliveryCounts:
        return await admin.counts(db)

    @post(
        "/{message_id:str}/retry",
        opt=OPERATE,
        status_code=HTTP_200_OK,
        summary="Send a dead delivery again (same idempotency key; attempts reset)",
    )
    async def retry(
        self, message_id: MessageId, operator: ProviderScope, db: AsyncSession, clock: Clock
    ) -> DeliveryRead:
        return await admin.retry(db, message_id, clock.now())


ROUTES = [OutboxController]
