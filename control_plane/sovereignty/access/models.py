"""Tables owned by operator access approval: requests (and grants), their uses, notices.

A request row is also the grant: once approved it carries its window
(``approved_at`` .. ``expires_at``). Rows are never deleted, so the access report can show
every request, decision, window and use for as long as the organization exists.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class AccessRequest(Base):
    __tablename__ = "access_request"
    __table_args__ = (
        Index(None, "org_id", "id"),
        Index(None, "operator_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    # Who asked, as they were when asking (a later change of home does not rewrite history).
    operator_id: Mapped[str] = mapped_column(String(40))
    operator_email: Mapped[str] = mapped_column(String(254))
    operator_jurisdiction: Mapped[str | None] = mapped_column(String(2))
    resource_type: Mapped[str] = mapped_column(String(20))
    resource_id: Mapped[str] = mapped_column(String(200))
    reason_code: Mapped[str] = mapped_column(String(40))
    justification: Mapped[str] = mapped_column(String(200))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    # The residency clause that let the request through when it was made.
    policy_rule: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(20))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decide_by: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decision_note: Mapped[str | None] = mapped_column(String(500))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # withdrawn or revoked
    ended_by: Mapped[str | None] = mapped_column(String(80))
    review_required: Mapped[bool] = mapped_column(Boolean)
    review_verdict: Mapped[str | None] = mapped_column(String(20))
    review_comment: Mapped[str | None] = mapped_column(String(2000))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reviewed_by: Mapped[str | None] = mapped_column(String(80))


class AccessUse(Base):
    """One use of a grant: what the operator did with it, and the ledger entry that says so."""

    __tablename__ = "access_use"
    __table_args__ = (Index(None, "org_id", "at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(
        ForeignKey("access_request.id", ondelete="CASCADE"), index=True
    )
    org_id: Mapped[str] = mapped_column(String(40))
    operator_id: Mapped[str] = mapped_column(String(40))
    resource_type: Mapped[str] = mapped_column(String(20))
    resource_id: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    ledger_chain: Mapped[str] = mapped_column(String(80))
    ledger_seq: Mapped[int] = mapped_column(BigInteger)


class AccessNotification(Base):
    """Something the organization's admins must see at once (a break-glass access)."""

    __tablename__ = "access_notification"
    __table_args__ = (Index(None, "org_id", "acknowledged_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(ForeignKey("access_request.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(80))
