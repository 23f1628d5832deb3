"""What the waste rules read: per-GPU and per-endpoint summaries of one analysis window.

The rules (:mod:`control_plane.insights.rules`) are pure: they take these plain values and
return findings, so they are unit-tested and benchmarked without a database. The features
are computed from the hourly telemetry rollups (and, for endpoints, from metered tokens) by
:mod:`control_plane.insights.extract`.

Utilization figures are percentages (0-100) of the GPU's streaming multiprocessors busy
(NVML's "GPU utilization"); memory is in MiB; power in watts; energy in watt-hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The knobs of every rule (operator settings; defaults documented in docs/insights.md)."""

    idle_util_pct: float = 5.0  # an hour is idle when its peak utilization stays below this
    busy_util_pct: float = 20.0  # an hour is busy when its p95 utilization reaches this
    idle_hours: int = 24  # idle for at least this long (trailing) before flagging
    min_hours: int = 24  # fewer hours of telemetry than this: no finding at all
    # oversized: peak memory at most this share of the cheaper card (or MIG slice)...
    memory_headroom: float = 0.8
    # ...and the p95 utilization of its busy hours at most this...
    oversized_util_pct: float = 40.0
    # ...and that load, projected onto the cheaper card's compute (by TDP), at most this
    compute_fit_pct: float = 80.0
    # underused multi-GPU: a GPU counts as used when busy in at least this share of hours
    gpu_busy_share: float = 0.10
    # night: local hours [night_start, night_end) idle on at least this share of nights,
    # while day hours are busy on at least day_busy_share
    night_start: int = 22
    night_end: int = 7
    night_idle_share: float = 0.9
    day_busy_share: float = 0.3
    # endpoints: replicas needed = ceil(peak tokens/s / (target per replica x this))
    endpoint_target_utilization: float = 0.7
    endpoint_idle_hours: int = 24  # no tokens at all for this long: scale to zero
    hours_per_month: int = 730


@dataclass(frozen=True, slots=True)
class GpuFeatures:
    """One GPU held by one tenancy, over the window (hours with telemetry only)."""

    gpu_id: str
    hours: int  # hours with samples
    idle_hours: int  # hours whose peak utilization stayed below idle_util_pct
    busy_hours: int  # hours whose p95 utilization reached busy_util_pct
    util_mean: float  # mean of the hourly means
    util_p95_max: float  # highest hourly p95
    busy_util_p95_mean: float  # mean hourly p95 over busy hours (0 when none)
    mem_max_mib: int  # highest memory used in any sample
    mem_total_mib: int
    proc_max: int  # most compute processes seen at once
    power_mean_w: float
    energy_wh: float
    last_busy_at: datetime | None  # start of the last busy hour
    night_hours: int  # local night hours with samples
    night_idle_hours: int
    day_hours: int
    day_busy_hours: int


@dataclass(frozen=True, slots=True)
class Alternative:
    """A card (or a slice of one) the tenancy could run on instead, with its price."""

    gpu_model: str
    gpu_milli: int  # 1000 for a whole GPU; less for a MIG-style or fractional slice
    memory_mib: int  # memory available to the tenancy on it
    hourly_price: Decimal  # per GPU (of this size) per hour, in the tenancy's currency
    tdp_watts: int


@dataclass(frozen=True, slots=True)
class TenancyFeatures:
    """One live tenancy (or inference replica) and its GPUs over the window."""

    tenancy_id: str
    org_id: str
    name: str
    kind: str  # bare_metal, vm, kubernetes, slurm
    region: str
    gpu_model: str
    gpu_milli: int  # share of each GPU held (1000: whole GPUs)
    gpus_per_node: int
    node_count: int
    endpoint_id: str | None  # set when the tenancy is a replica of an inference endpoint
    window_start: datetime
    window_end: datetime
    hourly_price: Decimal  # what one of its GPUs (at its share) costs per hour
    currency: str
    pue: float
    grid_g_per_kwh: float
    gpus: tuple[GpuFeatures, ...]
    alternatives: tuple[Alternative, ...] = field(default=())  # cheapest first
    resizable: bool = True  # the tenancy's driver resizes in place (bare metal: no)
    # the card's TDP (of a whole GPU), to scale the draw on a cheaper card; 0: unknown
    tdp_watts: int = 0

    @property
    def gpu_count(self) -> int:
        return self.gpus_per_node * self.node_count


@dataclass(frozen=True, slots=True)
class EndpointFeatures:
    """One inference endpoint over the window."""

    endpoint_id: str
    org_id: str
    name: str
    region: str
    replicas: int  # replicas it runs now
    min_replicas: int
    max_replicas: int
    target_tokens_per_s: int  # what one replica is sized for (the autoscaler's target)
    hours: int  # hours of the window the endpoint existed
    peak_tokens_per_s: float  # busiest hour's mean tokens/s (in + out)
    mean_tokens_per_s: float
    last_token_at: datetime | None  # start of the last hour with any tokens
    window_start: datetime
    window_end: datetime
    replica_hourly_price: Decimal  # what one replica costs per hour
    currency: str
    replica_power_w: float  # mean power of one replica's GPU share
    pue: float
    grid_g_per_kwh: float
