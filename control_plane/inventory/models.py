"""Tables owned by the inventory domain: regions, sites, GPU catalog, nodes, GPUs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, ForeignKey, Integer, Numeric, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime


class Region(Base):
    __tablename__ = "region"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    jurisdiction: Mapped[str] = mapped_column(String(2))
    sovereignty_group: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    pue: Mapped[Decimal] = mapped_column(Numeric(4, 2))
    grid_intensity_g_per_kwh: Mapped[int] = mapped_column(Integer)
    # IANA zone of the region's sites: night and day in utilization reports are local.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Site(Base):
    __tablename__ = "site"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    region_code: Mapped[str] = mapped_column(ForeignKey("region.code"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(200))


class GpuModel(Base):
    __tablename__ = "gpu_model"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    vendor: Mapped[str] = mapped_column(String(40))
    generation: Mapped[str] = mapped_column(String(40))
    memory_gib: Mapped[int] = mapped_column(Integer)
    tdp_watts: Mapped[int] = mapped_column(Integer)
    interconnect: Mapped[str] = mapped_column(String(40))
    mig_profiles: Mapped[list[str]] = mapped_column(JSON)


class Node(Base):
    __tablename__ = "node"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(253), unique=True)
    region_code: Mapped[str] = mapped_column(ForeignKey("region.code"), index=True)
    site_code: Mapped[str] = mapped_column(ForeignKey("site.code"))
    rack: Mapped[str] = mapped_column(String(64))
    bmc_endpoint: Mapped[str] = mapped_column(String(500))
    gpu_model_code: Mapped[str] = mapped_column(ForeignKey("gpu_model.code"), index=True)
    gpu_count: Mapped[int] = mapped_column(Integer)
    firmware_version: Mapped[str] = mapped_column(String(64))
    driver_version: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20), index=True)
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Host CPUs per NUMA node as cpusets ({"0": "0-31", "1": "32-63"}), when recorded.
    numa_cpus: Mapped[dict[str, str]] = mapped_column(
        JSON, default=dict, server_default=text("'{}'")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Gpu(Base):
    __tablename__ = "gpu"
    __table_args__ = (UniqueConstraint("node_id", "index"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("node.id", ondelete="CASCADE"))
    uuid: Mapped[str] = mapped_column(String(64), unique=True)
    index: Mapped[int] = mapped_column(Integer)
    model_code: Mapped[str] = mapped_column(ForeignKey("gpu_model.code"))
    nvlink_domain: Mapped[str | None] = mapped_column(String(64))
    # Where the GPU sits on the host, for PCI passthrough and NUMA pinning (VM tenancies).
    pci_address: Mapped[str | None] = mapped_column(String(16), default=None)
    numa_node: Mapped[int | None] = mapped_column(Integer, default=None)


class NodeEvent(Base):
    """Every lifecycle transition of a node, with who asked and why."""

    __tablename__ = "node_event"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("node.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
