"""Tables owned by the telemetry domain: node agent credentials, raw GPU samples, the
batches already received, the hours waiting to be rolled up, and hourly rollups.

Raw samples carry no foreign keys: the ingest checks every GPU against the node's own
inventory before writing, and a constraint check per row would cost more than the insert
at fleet volumes. Raw samples are kept for days (``CP_TELEMETRY_RAW_DAYS``), rollups for
months (``CP_TELEMETRY_ROLLUP_DAYS``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class NodeCredential(Base):
    """A node agent's credential: ``cpn_<prefix>_<secret>``, stored as a SHA-256 digest."""

    __tablename__ = "node_credential"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("node.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(20), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TelemetryBatch(Base):
    """A batch an agent sent: a retried batch id is recognised and not stored twice."""

    __tablename__ = "telemetry_batch"

    node_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    samples: Mapped[int] = mapped_column(Integer)
    duplicates: Mapped[int] = mapped_column(Integer)


class GpuSample(Base):
    """One reading of one GPU. ``(gpu_id, at)`` is unique: a sample sent twice is kept once."""

    __tablename__ = "gpu_sample"

    gpu_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(40))
    sm_util: Mapped[int] = mapped_column(SmallInteger)
    mem_util: Mapped[int] = mapped_column(SmallInteger)
    mem_used_mib: Mapped[int] = mapped_column(Integer)
    mem_total_mib: Mapped[int] = mapped_column(Integer)
    power_w: Mapped[float] = mapped_column(Float)
    temp_c: Mapped[int] = mapped_column(SmallInteger)
    sm_clock_mhz: Mapped[int] = mapped_column(Integer)
    mem_clock_mhz: Mapped[int] = mapped_column(Integer)
    ecc_corrected: Mapped[int | None] = mapped_column(Integer)
    ecc_uncorrected: Mapped[int | None] = mapped_column(Integer)
    proc_count: Mapped[int] = mapped_column(SmallInteger)
    processes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class TelemetryDirtyHour(Base):
    """An hour of one GPU that received samples since it was last rolled up."""

    __tablename__ = "telemetry_dirty_hour"

    gpu_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)


class GpuHour(Base):
    """One GPU over one hour, attributed to one holder.

    A GPU shared by fractional tenancies has one row per holder in the hour (``share_milli``
    of it each) and one row with ``tenancy_id`` ``""`` for the share nobody held; the GPU's
    readings repeat on each row and its energy is split by share, so sums over rows give
    each holder its part and the fleet its whole.
    """

    __tablename__ = "gpu_hour"
    __table_args__ = (
        Index(None, "tenancy_id", "hour"),
        Index(None, "org_id", "hour"),
        Index(None, "region_code", "hour"),
    )

    gpu_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    tenancy_id: Mapped[str] = mapped_column(String(40), primary_key=True)  # "": unallocated
    node_id: Mapped[str] = mapped_column(String(40))
    region_code: Mapped[str] = mapped_column(String(32))
    gpu_model_code: Mapped[str] = mapped_column(String(32))
    local_hour: Mapped[int] = mapped_column(SmallInteger)  # 0-23 in the region's time zone
    org_id: Mapped[str | None] = mapped_column(String(40))
    endpoint_id: Mapped[str | None] = mapped_column(String(40))
    share_milli: Mapped[int] = mapped_column(Integer)
    samples: Mapped[int] = mapped_column(Integer)
    util_mean: Mapped[float] = mapped_column(Float)
    util_p95: Mapped[float] = mapped_column(Float)
    util_max: Mapped[float] = mapped_column(Float)
    mem_mean_mib: Mapped[int] = mapped_column(Integer)
    mem_p95_mib: Mapped[int] = mapped_column(Integer)
    mem_max_mib: Mapped[int] = mapped_column(Integer)
    mem_total_mib: Mapped[int] = mapped_column(Integer)
    power_mean_w: Mapped[float] = mapped_column(Float)
    energy_wh: Mapped[float] = mapped_column(Float)  # this holder's share of the hour's energy
    proc_max: Mapped[int] = mapped_column(SmallInteger)
    ecc_errors: Mapped[int] = mapped_column(Integer)  # uncorrected errors seen in the hour
