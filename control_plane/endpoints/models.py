"""Tables owned by the endpoints domain: inference endpoints, their model versions, their
timeline, the organization's model governance setting and the gateway's usage flushes.

An endpoint's replicas are tenancies of kind ``inference`` managed by the endpoint (the
tenancies domain places them and runs their reconciler); this domain only says how many
it wants and what they serve.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class Endpoint(Base):
    __tablename__ = "endpoint"
    __table_args__ = (
        Index(None, "org_id", "id"),
        # One live endpoint per name in an organization (deleted ones keep their name).
        Index(
            "uq_endpoint_live_name",
            "org_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    project_id: Mapped[str | None] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(63))
    region_code: Mapped[str] = mapped_column(ForeignKey("region.code"))
    backend: Mapped[str] = mapped_column(String(20))
    gpu_model_code: Mapped[str] = mapped_column(ForeignKey("gpu_model.code"))
    gpus_per_replica: Mapped[int] = mapped_column(Integer)
    gpu_milli: Mapped[int] = mapped_column(Integer)  # share of each GPU, thousandths
    min_replicas: Mapped[int] = mapped_column(Integer)
    max_replicas: Mapped[int] = mapped_column(Integer)
    desired_replicas: Mapped[int] = mapped_column(Integer)
    # Autoscaling: generated tokens/s one replica should carry, queued requests per replica
    # that trigger a scale-up, and how long without traffic before scaling to zero.
    target_tokens_per_s: Mapped[int] = mapped_column(Integer)
    target_queue_per_replica: Mapped[int] = mapped_column(Integer)
    scale_to_zero_after_s: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EndpointVersion(Base):
    """One model version an endpoint can serve, with its share of the traffic."""

    __tablename__ = "endpoint_version"
    __table_args__ = (Index(None, "endpoint_id", "number", unique=True),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoint.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    source_uri: Mapped[str] = mapped_column(String(500))
    store_region: Mapped[str] = mapped_column(String(32))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    license: Mapped[str] = mapped_column(String(100))
    served_model: Mapped[str] = mapped_column(String(120))  # model name inside Triton
    approval: Mapped[str] = mapped_column(String(20))  # not-required, pending, approved, rejected
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str | None] = mapped_column(String(500))
    traffic_percent: Mapped[int] = mapped_column(Integer)
    io: Mapped[dict[str, object]] = mapped_column(JSON)  # inputs/outputs read from Triton
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EndpointEvent(Base):
    """The endpoint's timeline: creation, versions, approvals, scaling, replica changes."""

    __tablename__ = "endpoint_event"
    __table_args__ = (Index(None, "endpoint_id", "at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoint.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(20))  # created, version, approval, scale, ...
    detail: Mapped[str] = mapped_column(String(1000))
    actor: Mapped[str] = mapped_column(String(80))


class ModelGovernance(Base):
    """Whether an organization's model versions need a validator's approval before they
    serve production traffic (absent row: no approval needed)."""

    __tablename__ = "model_governance"

    org_id: Mapped[str] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), primary_key=True
    )
    require_approval: Mapped[bool] = mapped_column(Boolean)
    updated_by: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
