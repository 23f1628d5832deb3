"""Tables owned by the pools domain: pools, their member nodes, their weekly windows, and
the drain notices already given (so replicas and restarts never give one twice)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class Pool(Base):
    """A set of nodes of one region lent to organizations by weekly time windows."""

    __tablename__ = "pool"
    __table_args__ = (UniqueConstraint("region_code", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    region_code: Mapped[str] = mapped_column(ForeignKey("region.code"))
    name: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    drain_minutes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PoolNode(Base):
    """Membership: the primary key on the node means a node is in at most one pool."""

    __tablename__ = "pool_node"

    node_id: Mapped[str] = mapped_column(
        ForeignKey("node.id", ondelete="CASCADE"), primary_key=True
    )
    pool_id: Mapped[str] = mapped_column(ForeignKey("pool.id", ondelete="CASCADE"), index=True)


class PoolWindow(Base):
    """A weekly grant of the pool to an organization (or one of its projects).

    ``days`` is a bit set (bit 0 = Monday); ``start_minute`` and ``end_minute`` are local
    wall-clock minutes after midnight in the pool's zone (end at or before start: next day).
    """

    __tablename__ = "pool_window"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    pool_id: Mapped[str] = mapped_column(ForeignKey("pool.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[str] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[str | None] = mapped_column(String(40))
    days: Mapped[int] = mapped_column(Integer)
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PoolDrainNotice(Base):
    """A tenancy told that its pool switches at ``switch_at``; unique, so told once."""

    __tablename__ = "pool_drain_notice"
    __table_args__ = (
        UniqueConstraint("tenancy_id", "switch_at"),
        Index(None, "pool_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    pool_id: Mapped[str] = mapped_column(ForeignKey("pool.id", ondelete="CASCADE"))
    tenancy_id: Mapped[str] = mapped_column(ForeignKey("tenancy.id", ondelete="CASCADE"))
    switch_at: Mapped[datetime] = mapped_column(UTCDateTime())
    noticed_at: Mapped[datetime] = mapped_column(UTCDateTime())
