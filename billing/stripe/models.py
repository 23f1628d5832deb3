"""What we remember about Stripe: each organization's customer id, and per Stripe object
the newest event applied to it (so an older event arriving late is not applied)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class StripeCustomer(Base):
    """The Stripe customer an organization is billed as (one per organization)."""

    __tablename__ = "stripe_customer"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StripeSync(Base):
    """The newest webhook event (by Stripe's ``created``) applied to one Stripe object."""

    __tablename__ = "stripe_sync"

    object_id: Mapped[str] = mapped_column(String(100), primary_key=True)  # in_..., cus_...
    event_id: Mapped[str] = mapped_column(String(100))
    event_created: Mapped[datetime] = mapped_column(UTCDateTime())
