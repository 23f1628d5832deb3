"""Tables owned by metering: usage events (unique on (source, event_id)), their hourly
rollup, and what each source sent."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, Index, Numeric, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class UsageEvent(Base):
    """One measured amount of one thing (``gpu_seconds``, ``tokens_in`` ...) over a window.

    ``(source, event_id)`` is the idempotency key: a producer that sends the same event
    twice (a retry, a restart) stores it once. Events are never updated; a correction is a
    new event (an amendment: ``amends_id`` names the event it corrects, ``value`` is the
    signed difference) so the original stays as it was received.
    """

    __tablename__ = "usage_event"
    __table_args__ = (
        UniqueConstraint("source", "event_id"),
        # Amendments are rare: only they are indexed (an index entry per event costs ingest).
        Index(
            "ix_usage_event_amends_id",
            "amends_id",
            postgresql_where=text("amends_id IS NOT NULL"),
            sqlite_where=text("amends_id IS NOT NULL"),
        ),
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
    amends_id: Mapped[str | None] = mapped_column(String(40))


class UsageHourly(Base):
    """Usage summed per hour and per every billable dimension, kept up to date in the
    transaction that stores the events (so a query sees an event as soon as it commits).

    ``key`` is a digest of the other key columns (one short unique index for the upsert);
    absent dimensions are stored as ``""``.
    """

    __tablename__ = "usage_hourly"
    __table_args__ = (Index(None, "org_id", "hour"),)

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(40))
    project_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(40))
    hour: Mapped[datetime] = mapped_column(UTCDateTime())
    region: Mapped[str] = mapped_column(String(32))
    gpu_model: Mapped[str] = mapped_column(String(32))
    tenancy_kind: Mapped[str] = mapped_column(String(20))
    tenancy: Mapped[str] = mapped_column(String(40))
    endpoint: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(100))
    value: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    events: Mapped[int] = mapped_column(BigInteger)


class UsageSourceStat(Base):
    """Per source: events stored, duplicates ignored, amendments and rejections (reported
    to operators so a producer that retries too much or sends bad data is visible)."""

    __tablename__ = "usage_source_stat"

    source: Mapped[str] = mapped_column(String(80), primary_key=True)
    accepted: Mapped[int] = mapped_column(BigInteger)
    duplicates: Mapped[int] = mapped_column(BigInteger)
    amendments: Mapped[int] = mapped_column(BigInteger)
    rejected: Mapped[int] = mapped_column(BigInteger)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
