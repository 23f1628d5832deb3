"""Tables owned by residency: one immutable row per version of an organization's policy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class ResidencyPolicyVersion(Base):
    """A policy version: never updated; a change inserts the next version.

    ``flagged`` lists the resources that fell outside this version when it was saved with
    force (each ``{kind, id, region_code, description}``), so the report can say who
    accepted them and when.
    """

    __tablename__ = "residency_policy_version"
    __table_args__ = (UniqueConstraint("org_id", "version"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    classification: Mapped[str] = mapped_column(String(100))
    unrestricted: Mapped[bool] = mapped_column(Boolean)
    allowed_jurisdictions: Mapped[list[str]] = mapped_column(JSON)
    allowed_regions: Mapped[list[str]] = mapped_column(JSON)
    allowed_groups: Mapped[list[str]] = mapped_column(JSON)
    keys_in_region: Mapped[bool] = mapped_column(Boolean)
    cross_border_export: Mapped[bool] = mapped_column(Boolean)
    operator_jurisdictions: Mapped[list[str]] = mapped_column(JSON)
    template: Mapped[str | None] = mapped_column(String(40))
    changed_by_kind: Mapped[str] = mapped_column(String(20))
    changed_by_id: Mapped[str | None] = mapped_column(String(80))
    forced: Mapped[bool] = mapped_column(Boolean)
    flagged: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
