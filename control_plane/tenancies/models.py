"""Tables owned by the tenancies domain: tenancies, their events, GPU claims and
allocations, shapes and quotas.

``gpu_claim`` is the allocation ledger of each GPU: ``used_milli`` (thousandths of the GPU
given out) is raised and lowered only by conditional statements, and a CHECK constraint
refuses anything above 1000, so no GPU can ever be given out twice, whatever the code
above does. ``gpu_allocation`` says which tenancy holds which share; a partial unique
index also refuses two live whole-GPU allocations of one GPU.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class Tenancy(Base):
    __tablename__ = "tenancy"
    __table_args__ = (
        Index(None, "org_id", "id"),
        Index(None, "state", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    project_id: Mapped[str | None] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(63))
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(20))
    region_code: Mapped[str] = mapped_column(ForeignKey("region.code"))
    gpu_model_code: Mapped[str] = mapped_column(ForeignKey("gpu_model.code"))
    shape: Mapped[str | None] = mapped_column(String(40))
    node_count: Mapped[int] = mapped_column(Integer)
    gpus_per_node: Mapped[int] = mapped_column(Integer)
    gpu_milli: Mapped[int] = mapped_column(Integer)
    image: Mapped[str | None] = mapped_column(String(200))
    ssh_public_keys: Mapped[list[str]] = mapped_column(JSON)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    idle_release_minutes: Mapped[int | None] = mapped_column(Integer)
    # Lifecycle.
    state: Mapped[str] = mapped_column(String(20))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    driver: Mapped[str] = mapped_column(String(40))
    simulated: Mapped[bool] = mapped_column(Boolean)
    facts: Mapped[dict[str, str]] = mapped_column(JSON)
    generation: Mapped[int] = mapped_column(Integer)  # desired spec version (resize bumps it)
    applied_generation: Mapped[int] = mapped_column(Integer)
    # Reconciler work claim: a lease token, when it lapses, when to look again.
    lease_token: Mapped[str | None] = mapped_column(String(40))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # Times.
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    release_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    accrued_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    idle_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expiry_warned: Mapped[bool] = mapped_column(Boolean)
    # When the reconciler flagged it as stuck (cleared when its state moves on).
    stuck_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Set when another domain owns the tenancy (``endpoint:ep_...`` for inference replicas):
    # only the owner changes or releases it. ``workload`` is what the owner wants it to run.
    managed_by: Mapped[str | None] = mapped_column(String(60), default=None, index=True)
    workload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TenancyEvent(Base):
    """The tenancy's timeline: every transition and every step the reconciler took."""

    __tablename__ = "tenancy_event"
    __table_args__ = (Index(None, "tenancy_id", "at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenancy_id: Mapped[str] = mapped_column(ForeignKey("tenancy.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(20))  # transition, step, warning, error
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(String(1000))
    actor: Mapped[str] = mapped_column(String(80))


class GpuClaim(Base):
    __tablename__ = "gpu_claim"
    __table_args__ = (
        CheckConstraint("used_milli >= 0 AND used_milli <= 1000", name="used_milli_range"),
    )

    gpu_id: Mapped[str] = mapped_column(ForeignKey("gpu.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("node.id", ondelete="CASCADE"), index=True)
    used_milli: Mapped[int] = mapped_column(Integer)


class GpuAllocation(Base):
    __tablename__ = "gpu_allocation"
    __table_args__ = (
        Index(
            "uq_gpu_allocation_live_whole_gpu",
            "gpu_id",
            unique=True,
            sqlite_where=text("released_at IS NULL AND milli = 1000"),
            postgresql_where=text("released_at IS NULL AND milli = 1000"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenancy_id: Mapped[str] = mapped_column(
        ForeignKey("tenancy.id", ondelete="CASCADE"), index=True
    )
    node_id: Mapped[str] = mapped_column(ForeignKey("node.id"))
    gpu_id: Mapped[str] = mapped_column(ForeignKey("gpu.id"))
    gpu_index: Mapped[int] = mapped_column(Integer)
    milli: Mapped[int] = mapped_column(Integer)
    allocated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Shape(Base):
    """An operator-defined size of a tenancy in one region (small = 1x L40S ...)."""

    __tablename__ = "shape"
    __table_args__ = (UniqueConstraint("region_code", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    region_code: Mapped[str] = mapped_column(ForeignKey("region.code"))
    name: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(200))
    gpu_model_code: Mapped[str] = mapped_column(ForeignKey("gpu_model.code"))
    gpus_per_node: Mapped[int] = mapped_column(Integer)
    node_count: Mapped[int] = mapped_column(Integer)
    gpu_milli: Mapped[int] = mapped_column(Integer)
    interconnect: Mapped[str] = mapped_column(String(20))  # nvlink, pcie
    # List price per hour of the whole shape, in the region's currency (for "cheapest").
    hourly_price: Mapped[Decimal] = mapped_column(Numeric(12, 4))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GpuQuota(Base):
    """How many GPUs an organization may hold at once; ``org_id`` ``*`` is the default for
    every organization, ``region_code``/``gpu_model_code`` ``*`` match any."""

    __tablename__ = "gpu_quota"
    __table_args__ = (UniqueConstraint("org_id", "region_code", "gpu_model_code"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(40))
    region_code: Mapped[str] = mapped_column(String(32))
    gpu_model_code: Mapped[str] = mapped_column(String(32))
    max_gpus: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TenancyOrgLock(Base):
    """One row per organization, locked by each create and resize so quota checks of one
    organization run one at a time (other organizations are not held up)."""

    __tablename__ = "tenancy_org_lock"

    org_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    touched_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TenancyCredential(Base):
    """The tenancy's current access credential (a kubeconfig): the value sits encrypted in
    the secret store (``secret_id``) until it is shown once, then it is deleted there."""

    __tablename__ = "tenancy_credential"

    tenancy_id: Mapped[str] = mapped_column(
        ForeignKey("tenancy.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    secret_id: Mapped[str | None] = mapped_column(String(40))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revealed_by: Mapped[str | None] = mapped_column(String(80))
    rotations: Mapped[int] = mapped_column(Integer)
