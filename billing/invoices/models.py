"""Invoices, their lines, and credits drawn against them.

Money is integer minor units (cents, öre); quantities and unit prices are exact
decimals. A finalized invoice never changes: ``status`` moves on (paid, void) but lines
and totals stay; a correction is a credit note (``kind="credit_note"``) that points at
the invoice it corrects.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class Invoice(Base):
    __tablename__ = "invoice"
    __table_args__ = (
        Index(None, "org_id", "period_start"),
        Index(None, "org_id", "number", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # invoice, credit_note
    status: Mapped[str] = mapped_column(String(20))  # draft, finalized, paid, void
    number: Mapped[str | None] = mapped_column(String(40))  # given at finalization
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    credits_minor: Mapped[int] = mapped_column(BigInteger)
    amount_due_minor: Mapped[int] = mapped_column(BigInteger)
    # The buyer and seller as rated (country, subdivision, tax id, legal name).
    customer: Mapped[dict[str, str]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of the rated lines
    corrects_id: Mapped[str | None] = mapped_column(ForeignKey("invoice.id"))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(100))


class InvoiceLine(Base):
    __tablename__ = "invoice_line"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(
        ForeignKey("invoice.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))  # gpu_seconds, tokens_in, commitment, ...
    description: Mapped[str] = mapped_column(String(300))
    dimensions: Mapped[dict[str, str]] = mapped_column(JSON)
    quantity: Mapped[Decimal] = mapped_column(Numeric(24, 6))
    unit: Mapped[str] = mapped_column(String(30))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    tax_rule: Mapped[str] = mapped_column(String(200))
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(7, 5))
    tax_minor: Mapped[int] = mapped_column(BigInteger)


class CreditUse(Base):
    """Money drawn from a credit grant to pay part of an invoice (returned on void)."""

    __tablename__ = "credit_use"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(
        ForeignKey("invoice.id", ondelete="CASCADE"), index=True
    )
    grant_id: Mapped[str] = mapped_column(ForeignKey("credit_grant.id", ondelete="CASCADE"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
