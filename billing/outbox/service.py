"""Writing to the outbox: in the caller's transaction, once per key."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from billing.outbox.models import OutboxMessage
from control_plane.ids import new_id

__all__ = ["enqueue"]


async def enqueue(
    db: AsyncSession,
    *,
    key: str,
    topic: str,
    org_id: str | None,
    payload: dict[str, Any],
    now: datetime,
) -> bool:
    """Add a message unless one with ``key`` exists; True when it was added.

    Topics and their payloads: ``webhook`` {budget_id, event}, ``email`` {to, subject,
    text}, ``stripe.customer`` {org_id}, ``stripe.invoice`` {invoice_id}.
    """
    table = cast(Table, OutboxMessage.__table__)
    dialect = (await db.connection()).dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .values(
            id=new_id("obx"),
            key=key,
            topic=topic,
            org_id=org_id,
            payload=payload,
            attempts=0,
            next_attempt_at=now,
            lease_until=None,
            done_at=None,
            last_error="",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(table.c.id)
    )
    return (await db.execute(statement)).first() is not None
