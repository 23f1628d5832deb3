"""What operators do with the outbox: see what is waiting or was given up on, and send a
dead message again once its cause is fixed (a webhook endpoint back up, Stripe configured).

A retry puts the message back in the queue with its attempts reset; its key stays, so the
receiver still sees the same idempotency key and a delivery that did land before is not
made twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.outbox.models import OutboxMessage
from billing.outbox.schemas import DeliveryCounts, DeliveryRead, DeliveryState
from control_plane.errors import Conflict, NotFound

__all__ = ["counts", "list_deliveries", "retry"]


def _state_filter(state: DeliveryState) -> tuple[ColumnElement[bool], ...]:
    if state == "done":
        return (OutboxMessage.done_at.is_not(None),)
    if state == "dead":
        return (OutboxMessage.dead_at.is_not(None),)
    return (OutboxMessage.done_at.is_(None), OutboxMessage.dead_at.is_(None))


def _read(row: OutboxMessage) -> DeliveryRead:
    state: DeliveryState = (
        "done" if row.done_at is not None else "dead" if row.dead_at is not None else "pending"
    )
    return DeliveryRead(
        id=row.id,
        key=row.key,
        topic=row.topic,
        org_id=row.org_id,
        state=state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
        done_at=row.done_at,
        dead_at=row.dead_at,
        last_error=row.last_error,
    )


async def list_deliveries(
    db: AsyncSession, state: DeliveryState, *, topic: str | None = None, limit: int = 100
) -> list[DeliveryRead]:
    """Messages in ``state``, newest first."""
    query = select(OutboxMessage).where(*_state_filter(state))
    if topic is not None:
        query = query.where(OutboxMessage.topic == topic)
    rows = await db.scalars(query.order_by(OutboxMessage.created_at.desc()).limit(limit))
    return [_read(row) for row in rows]


async def counts(db: AsyncSession) -> DeliveryCounts:
    """How many messages are pending, dead and done (one query)."""
    states: tuple[DeliveryState, ...] = ("pending", "dead", "done")
    row = (
        await db.execute(
            select(*(func.count().filter(*_state_filter(state)) for state in states)).select_from(
                OutboxMessage
            )
        )
    ).one()
    return DeliveryCounts(**{state: int(n) for state, n in zip(states, row, strict=True)})


async def retry(db: AsyncSession, message_id: str, now: datetime) -> DeliveryRead:
    """Queue a dead message again, due now, its attempts reset (409 unless dead)."""
    row = await db.get(OutboxMessage, message_id, with_for_update=True)
    if row is None:
        raise NotFound(detail=f"No outbox message {message_id!r}.")
    if row.dead_at is None:
        state = "delivered" if row.done_at is not None else "still being delivered"
        raise Conflict(
            detail=f"Outbox message {message_id} is {state}: only dead ones are retried."
        )
    row.dead_at, row.attempts, row.next_attempt_at, row.lease_until = None, 0, now, None
    await db.flush()
    return _read(row)
