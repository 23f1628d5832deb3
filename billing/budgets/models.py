"""Budgets and the alerts already sent for them (one per threshold and month)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class Budget(Base):
    __tablename__ = "budget"
    __table_args__ = (UniqueConstraint("org_id", "project_id", "currency"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str] = mapped_column(String(40))  # "" = the whole organization
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # per calendar month (UTC)
    thresholds: Mapped[list[int]] = mapped_column(JSON)  # percents, e.g. [50, 80, 100]
    hard_stop: Mapped[bool] = mapped_column(Boolean)  # refuse new work at 100 %
    webhook_url: Mapped[str] = mapped_column(String(500))
    webhook_secret: Mapped[str] = mapped_column(String(500))  # encrypted at rest
    email: Mapped[str] = mapped_column(String(254))
    # Last evaluation: spend so far this month, and whether new work is refused.
    spent_minor: Mapped[int] = mapped_column(BigInteger)
    stopped: Mapped[bool] = mapped_column(Boolean)
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BudgetAlert(Base):
    __tablename__ = "budget_alert"
    __table_args__ = (UniqueConstraint("budget_id", "month", "threshold"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    budget_id: Mapped[str] = mapped_column(ForeignKey("budget.id", ondelete="CASCADE"))
    month: Mapped[str] = mapped_column(String(7))  # 2026-12
    threshold: Mapped[int] = mapped_column(Integer)
    spent_minor: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
