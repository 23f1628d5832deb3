"""Tables owned by metering: usage events, unique on (source, event_id)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Index, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class UsageEvent(Base):
    """One measured amount of one thing (``gpu_seconds``, ``tokens_in`` ...) over a window.

    ``(source, event_id)`` is the idempotency key: a producer that sends the same event
    twice (a retry, a restart) stores it once. Events are never updated; corrections are
    new events (amendments) that point at the one they correct.
    """

    __tablename__ = "usage_event"
    __table_args__ = (
        UniqueConstraint("source", "event_id"),
        Index(None, "org_id", "window_start"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    source: Mapped[str] = mapped_column(String(80))
    event_id: Mapped[str] = mapped_column(String(200))
    org_id: Mapped[str] = mapped_column(String(40))
    project_id: Mapped[str | None] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(40))
    value: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    dimensions: Mapped[dict[str, str]] = mapped_column(JSON)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
