"""Tables owned by the insights domain: recommendations (one per rule and target, kept up
to date by each analysis) and a daily waste summary per organization (the trend chart)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, Index, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class Recommendation(Base):
    __tablename__ = "recommendation"
    __table_args__ = (
        UniqueConstraint("org_id", "rule", "target_id"),
        Index(None, "org_id", "state"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(40))
    target_kind: Mapped[str] = mapped_column(String(20))  # tenancy, endpoint
    target_id: Mapped[str] = mapped_column(String(40))
    target_name: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    action: Mapped[dict[str, Any]] = mapped_column(JSON)  # kind, params, summary
    monthly_savings: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    energy_kwh_month: Mapped[Decimal] = mapped_column(Numeric(12, 1))
    co2e_kg_month: Mapped[Decimal] = mapped_column(Numeric(12, 1))
    confidence: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    wasted_gpu_hours: Mapped[float] = mapped_column(Float)
    # open -> applied | dismissed | snoozed (until snoozed_until) | resolved (gone by itself)
    state: Mapped[str] = mapped_column(String(20))
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str] = mapped_column(String(500))  # why dismissed, what applying did
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(80))


class WasteDay(Base):
    """One organization's idle GPU-hours on one (UTC) day and what they cost."""

    __tablename__ = "waste_day"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    gpu_hours: Mapped[float] = mapped_column(Float)  # held
    idle_gpu_hours: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    wasted: Mapped[Decimal] = mapped_column(Numeric(14, 2))  # idle hours at the org's prices
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
