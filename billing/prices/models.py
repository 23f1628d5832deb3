"""Tables of price books (versioned per region), the rates in them, per-organization
contract overrides, commitments (reserved capacity) and credit grants (prepaid wallets).

A price book is never edited once created: a new version with a later ``effective_from``
replaces it from then on, so an invoice can always be re-rated exactly.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class PriceBook(Base):
    __tablename__ = "price_book"
    __table_args__ = (UniqueConstraint("region_code", "version"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    region_code: Mapped[str] = mapped_column(ForeignKey("region.code"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime())
    # Night rates apply to hours starting in [night_start, night_end) in this time zone.
    timezone: Mapped[str] = mapped_column(String(64))
    night_start_hour: Mapped[int] = mapped_column(Integer)
    night_end_hour: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(40))


class PriceRate(Base):
    """One price: for a usage type, matching a GPU model / tenancy kind / model ("" = any).
    GPU time is priced per GPU-hour (billed per second, with a minimum per tenancy);
    tokens per million."""

    __tablename__ = "price_rate"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    book_id: Mapped[str] = mapped_column(
        ForeignKey("price_book.id", ondelete="CASCADE"), index=True
    )
    usage_type: Mapped[str] = mapped_column(String(40))
    gpu_model: Mapped[str] = mapped_column(String(32))
    tenancy_kind: Mapped[str] = mapped_column(String(20))
    model: Mapped[str] = mapped_column(String(100))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    night_unit_price: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    minimum_seconds: Mapped[int] = mapped_column(Integer)


class ContractOverride(Base):
    """An organization's negotiated price: replaces the book's unit price for matching
    usage (``unit_price``) or takes a percentage off it (``discount_percent``)."""

    __tablename__ = "contract_override"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    region_code: Mapped[str] = mapped_column(String(32))
    usage_type: Mapped[str] = mapped_column(String(40))
    gpu_model: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(100))
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    discount_percent: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Commitment(Base):
    """Reserved capacity: ``gpus`` of a GPU model in a region at a discounted hourly price
    per GPU, billed for every hour of its term whether used or not (prorated to the
    invoice period); usage of that model in that region is covered up to it."""

    __tablename__ = "commitment"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    region_code: Mapped[str] = mapped_column(String(32))
    gpu_model: Mapped[str] = mapped_column(String(32))
    gpus: Mapped[Decimal] = mapped_column(Numeric(10, 3))
    hourly_price: Mapped[Decimal] = mapped_column(Numeric(18, 6))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CreditGrant(Base):
    """Prepaid money or a promotional credit, drawn down (oldest expiry first) when an
    invoice in the same currency is finalized."""

    __tablename__ = "credit_grant"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    remaining_minor: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BillingProfile(Base):
    """Where and who the customer is, for taxes: country, subdivision (province), VAT or
    business number, and the address invoices go to."""

    __tablename__ = "billing_profile"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), primary_key=True
    )
    legal_name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    subdivision: Mapped[str] = mapped_column(String(3))
    tax_id: Mapped[str] = mapped_column(String(40))
    email: Mapped[str] = mapped_column(String(254))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
