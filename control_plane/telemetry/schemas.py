"""Request and response bodies of the telemetry API (the node agent's wire format)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from control_plane.http.fields import PRINTABLE

__all__ = [
    "BatchIn",
    "BatchResult",
    "CredentialCreated",
    "CredentialRead",
    "ProcessIn",
    "SampleIn",
]

MAX_SAMPLES = 5000
Pct = Annotated[int, Meta(ge=0, le=100)]
Mib = Annotated[int, Meta(ge=0, le=16 * 1024 * 1024)]
Count = Annotated[int, Meta(ge=0, le=2**31 - 1)]


class _In(msgspec.Struct, forbid_unknown_fields=True):
    pass


class ProcessIn(_In):
    pid: Annotated[int, Meta(ge=0, le=2**31 - 1)]
    name: Annotated[str, Meta(max_length=200, pattern=PRINTABLE)] = ""
    used_mib: Mib | None = None


class SampleIn(_In):
    at: datetime
    gpu_uuid: Annotated[str, Meta(min_length=1, max_length=64, pattern=PRINTABLE)]
    index: Annotated[int, Meta(ge=0, le=255)]
    sm_util_pct: Pct
    mem_util_pct: Pct
    mem_used_mib: Mib
    mem_total_mib: Mib
    power_w: Annotated[float, Meta(ge=0, le=5000)]
    temp_c: Annotated[int, Meta(ge=-40, le=200)]
    sm_clock_mhz: Annotated[int, Meta(ge=0, le=10000)]
    mem_clock_mhz: Annotated[int, Meta(ge=0, le=50000)]
    ecc_corrected: Count | None = None
    ecc_uncorrected: Count | None = None
    processes: Annotated[list[ProcessIn], Meta(max_length=256)] = []


class BatchIn(_In):
    batch_id: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
    samples: Annotated[list[SampleIn], Meta(max_length=MAX_SAMPLES)]
    agent_version: Annotated[str, Meta(max_length=40, pattern=PRINTABLE)] = ""


class BatchResult(msgspec.Struct):
    accepted: int  # samples stored
    duplicates: int  # samples already stored (same GPU, same second)
    batch_duplicate: bool  # the whole batch was received before: nothing stored


class CredentialRead(msgspec.Struct):
    id: str
    node_id: str
    prefix: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class CredentialCreated(msgspec.Struct):
    id: str
    node_id: str
    prefix: str
    credential: str  # shown once; put it in the agent's credential file
    created_at: datetime


class HourPoint(msgspec.Struct, array_like=True):
    """[hour, mean utilization %, p95 utilization %, peak memory MiB, energy Wh, p95 memory
    MiB]"""

    hour: datetime
    util_mean: float
    util_p95: float
    mem_max_mib: int
    energy_wh: float
    mem_p95_mib: int = 0


class GpuSeries(msgspec.Struct):
    gpu_id: str
    gpu_model: str
    tenancy_id: str
    share_milli: int
    points: list[HourPoint]


class DayTotals(msgspec.Struct):
    day: str  # YYYY-MM-DD (UTC)
    gpu_hours: float  # held, by share
    idle_gpu_hours: float  # of those, hours whose peak stayed under the idle threshold
    energy_kwh: float


class UtilizationReport(msgspec.Struct):
    org_id: str
    since: datetime
    until: datetime
    idle_util_pct: float
    gpu_hours: float
    idle_gpu_hours: float
    util_mean: float  # share-weighted mean over the window
    energy_kwh: float
    days: list[DayTotals]
    gpus: list[GpuSeries]
    truncated: bool  # more GPUs than the report shows


class FleetPoint(msgspec.Struct, array_like=True):
    """[hour, GPUs reporting, mean utilization %, GPUs allocated, mean power kW]"""

    hour: datetime
    gpus: int
    util_mean: float
    allocated_gpus: float
    power_kw: float


class RegionFleet(msgspec.Struct):
    region: str
    gpus: int  # in the inventory (not retired)
    util_mean: float
    allocated_share: float  # 0..1 of GPU-hours reported
    energy_kwh: float  # at the GPUs
    facility_kwh: float  # x the region's PUE
    co2e_kg: float  # x the region's grid intensity
    points: list[FleetPoint]


class FleetReport(msgspec.Struct):
    since: datetime
    until: datetime
    regions: list[RegionFleet]
