"""A generated GPU fleet with planted waste and healthy look-alikes, to measure the rules.

:func:`generate` is deterministic for a seed. It plants every kind of waste the rules look
for, each next to look-alikes that a naive rule would flag (a bursty job with long idle gaps
but busy lately, a job light on SM but heavy on memory, a multi-GPU job whose weakest GPU is
still above the busy share, a day-heavy job busy on some nights, an endpoint whose rare peaks
need all its replicas, an endpoint idle for less than a day, a lease too new to judge...).
Each planted tenancy and endpoint carries the rules that should fire on it (``expected``).

Hourly GPU rows are produced lazily (:meth:`Fleet.rows`), as plain named tuples, so that
10,000 GPUs x 30 days (7.2 million rows) stream through in pure Python.
:func:`fleet_features` is a reference computation of the rules' features from those rows,
the same as the SQL over hourly rollups computes, so accuracy is measured without a database.

Prices (CAD per GPU-hour) and the alternatives a tenancy could move to: every other card of
the catalog, plus MIG-style slices of MIG-capable cards (half and quarter: that share of the
memory, price and TDP). The rules keep only the cheaper ones.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from control_plane.insights.features import (
    Alternative,
    EndpointFeatures,
    GpuFeatures,
    TenancyFeatures,
    Thresholds,
)
from control_plane.insights.findings import Rule

CURRENCY = "CAD"
SAMPLES_PER_HOUR = 60
MISSING_HOUR_RATE = 0.01  # telemetry gaps
NOISE_SIZE = 1 << 14  # a table of jitter, indexed per row instead of calling the RNG


@dataclass(frozen=True, slots=True)
class GpuModel:
    name: str
    memory_mib: int
    tdp_watts: int
    idle_watts: int
    price: Decimal  # per GPU-hour, CAD
    mig: bool  # can be sliced (MIG)


CATALOG: dict[str, GpuModel] = {
    m.name: m
    for m in (
        GpuModel("H100-80GB", 81920, 700, 75, Decimal("4.50"), mig=True),
        GpuModel("A100-80GB", 81920, 400, 60, Decimal("2.80"), mig=True),
        GpuModel("L40S", 49152, 350, 35, Decimal("1.60"), mig=False),
        GpuModel("L4", 24576, 72, 16, Decimal("0.70"), mig=False),
    )
}
SLICES = (500, 250)  # MIG-style shares of a whole GPU


def price_of(model: str, milli: int = 1000) -> Decimal:
    return CATALOG[model].price * milli / 1000


def alternatives_for(model: str, milli: int = 1000) -> tuple[Alternative, ...]:
    """Other cards, and slices of every sliceable card (this one's smaller than held), cheapest
    first: what the control plane offers in a region that has them all."""
    alts = [
        Alternative(m.name, 1000, m.memory_mib, m.price, m.tdp_watts)
        for m in CATALOG.values()
        if m.name != model
    ]
    for card in CATALOG.values():
        if card.mig:
            alts += [
                Alternative(card.name, s, card.memory_mib * s // 1000, price_of(card.name, s),
                            card.tdp_watts * s // 1000)
                for s in SLICES
                if card.name != model or s < milli
            ]  # fmt: skip
    return tuple(sorted(alts, key=lambda a: (a.hourly_price, -a.memory_mib)))


class HourRow(NamedTuple):
    gpu_id: str
    tenancy_id: str
    hour: datetime  # UTC, on the hour
    local_hour: int  # 0-23 in the region's time zone
    util_mean: float
    util_p95: float
    util_max: float
    mem_mean_mib: int
    mem_max_mib: int
    mem_total_mib: int
    power_mean_w: float
    energy_wh: float
    proc_max: int
    samples: int


@dataclass(frozen=True, slots=True)
class PlantedTenancy:
    tenancy_id: str
    org_id: str
    name: str
    kind: str
    region: str
    gpu_model: str
    gpu_milli: int
    gpus_per_node: int
    node_count: int
    endpoint_id: str | None
    gpu_ids: tuple[str, ...]
    expected: frozenset[Rule]
    profile: str  # the planted pattern (waste kind, look-alike or healthy)
    resizable: bool = True


@dataclass(frozen=True, slots=True)
class PlantedEndpoint:
    endpoint_id: str
    org_id: str
    name: str
    replicas: int
    min_replicas: int
    max_replicas: int
    target_tokens_per_s: int
    gpu_model: str
    tokens_per_s: tuple[float, ...]  # mean tokens/s of each hour of the window
    expected: frozenset[Rule]
    profile: str


@dataclass(slots=True)
class _GpuPlan:
    """How one GPU behaves: per hour, -1 no sample, 0 idle, >0 the hour's p95 utilization."""

    levels: list[float]
    mem_busy: int  # MiB at the peak of active hours
    mem_idle: int  # MiB held in idle hours
    proc_busy: int = 1
    proc_idle: int = 1
    spike: float = 4.0  # highest peak utilization of an idle hour's noise


@dataclass(slots=True)
class Fleet:
    start: datetime
    hours: int
    utc_offset_hours: int
    region: str
    pue: float
    grid_g_per_kwh: float
    tenancies: list[PlantedTenancy] = field(default_factory=list)
    endpoints: list[PlantedEndpoint] = field(default_factory=list)
    plans: dict[str, list[_GpuPlan]] = field(default_factory=dict)
    noise: list[float] = field(default_factory=list)
    hour_starts: list[datetime] = field(default_factory=list)
    local_hours: list[int] = field(default_factory=list)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=self.hours)

    @property
    def gpu_count(self) -> int:
        return sum(len(t.gpu_ids) for t in self.tenancies)

    def rows(self) -> Iterator[HourRow]:
        """Every hourly row: tenancy by tenancy, GPU by GPU, hour by hour."""
        for t in self.tenancies:
            yield from self.tenancy_rows(t)

    def tenancy_rows(self, t: PlantedTenancy) -> Iterator[HourRow]:
        hours, local = self.hour_starts, self.local_hours
        model = CATALOG[t.gpu_model]
        share = t.gpu_milli / 1000
        total = int(model.memory_mib * share)
        for i, (gpu_id, plan) in enumerate(zip(t.gpu_ids, self.plans[t.tenancy_id], strict=True)):
            offset = hash_offset(gpu_id) + i
            yield from _gpu_rows(
                gpu_id, t.tenancy_id, plan, model, share, total, hours, local, self.noise, offset
            )


def hash_offset(text: str) -> int:
    """A stable small number from an id (``hash`` is salted per process)."""
    return sum(text.encode()) * 2654435761 % NOISE_SIZE


def _gpu_rows(
    gpu_id: str,
    tenancy_id: str,
    plan: _GpuPlan,
    model: GpuModel,
    share: float,
    total: int,
    hours: list[datetime],
    local: list[int],
    noise: list[float],
    offset: int,
) -> Iterator[HourRow]:
    new = tuple.__new__
    idle_w = model.idle_watts * share
    span = (model.tdp_watts - model.idle_watts) * share / 100
    mask = NOISE_SIZE - 1
    mem_busy, mem_idle, spike = plan.mem_busy, plan.mem_idle, plan.spike
    proc_busy, proc_idle = plan.proc_busy, plan.proc_idle
    for h, level in enumerate(plan.levels):
        if level < 0:
            continue
        j = noise[(offset + h) & mask]
        if level == 0:
            peak = j * spike
            p95 = peak * 0.6
            mean = peak * 0.25
            mem_max = mem_mean = mem_idle
            proc = proc_idle
        else:
            p95 = min(100.0, level * (0.92 + 0.16 * j))
            peak = min(100.0, p95 * 1.05 + 2.0)
            mean = p95 * 0.75
            mem_max = int(mem_busy * (0.9 + 0.1 * j))
            mem_mean = int(mem_max * 0.85)
            proc = proc_busy
        power = idle_w + span * mean
        yield new(
            HourRow,
            (
                gpu_id,
                tenancy_id,
                hours[h],
                local[h],
                mean,
                p95,
                peak,
                mem_mean,
                mem_max,
                total,
                power,
                power,
                proc,
                SAMPLES_PER_HOUR,
            ),
        )


# ---------------------------------------------------------------- planting


@dataclass(frozen=True, slots=True)
class _Calendar:
    """The window's hours as the region sees them."""

    hours: int
    local: tuple[int, ...]  # per window hour: the local hour of day
    night: tuple[bool, ...]  # local night (22:00-07:00)
    weekend: tuple[bool, ...]

    @classmethod
    def of(cls, start: datetime, hours: int, offset: int, th: Thresholds) -> _Calendar:
        local = [start + timedelta(hours=h + offset) for h in range(hours)]
        return cls(
            hours,
            tuple(t.hour for t in local),
            tuple(_is_night(t.hour, th) for t in local),
            tuple(t.weekday() >= 5 for t in local),
        )


def _is_night(hour: int, th: Thresholds) -> bool:
    if th.night_start > th.night_end:
        return hour >= th.night_start or hour < th.night_end
    return th.night_start <= hour < th.night_end


def _active(rng: random.Random, hours: int, p_busy: float, lo: float, hi: float) -> list[float]:
    """Busy hours at random (p95 in [lo, hi]), the rest idle."""
    rand, uni = rng.random, rng.uniform
    return [uni(lo, hi) if rand() < p_busy else 0.0 for _ in range(hours)]


def _with_light(rng: random.Random, levels: list[float], rate: float) -> list[float]:
    """Some idle hours turned light (p95 6-14: neither idle nor busy)."""
    rand = rng.random
    return [rng.uniform(6, 14) if lv == 0 and rand() < rate else lv for lv in levels]


def _trailing_idle(levels: list[float], idle_for: int, busy: float) -> list[float]:
    """The last ``idle_for`` hours idle, the hour before busy."""
    cut = len(levels) - idle_for
    return [*levels[: cut - 1], busy, *([0.0] * idle_for)]


@dataclass(frozen=True, slots=True)
class _Shape:
    """A planted tenancy's shape before its GPUs get plans."""

    profile: str
    expected: frozenset[Rule]
    model: str
    gpus_per_node: int
    node_count: int = 1
    kind: str = "vm"


Planter = Callable[[random.Random, _Calendar], tuple[_Shape, list[_GpuPlan]]]


def _mem(rng: random.Random, model: str, lo: float, hi: float) -> int:
    return int(CATALOG[model].memory_mib * rng.uniform(lo, hi))


PLANTED_LOAD = (22.0, 34.0)  # busy-hour p95 of the light jobs oversized and look-alikes run


def _fit_limit(model: str, th: Thresholds) -> int:
    """Largest peak memory that some cheaper alternative of ``model`` fits (0: none), among
    those whose compute carries the light jobs' highest load (as the rule projects it)."""
    own = CATALOG[model]
    fits = [
        int(th.memory_headroom * a.memory_mib)
        for a in alternatives_for(model)
        if a.hourly_price < own.price
        and PLANTED_LOAD[1] * own.tdp_watts / a.tdp_watts <= th.compute_fit_pct
    ]
    return max(fits, default=0)


def _steady(rng: random.Random, cal: _Calendar, model: str, lo: float = 0.55) -> _GpuPlan:
    levels = _with_light(rng, _active(rng, cal.hours, rng.uniform(0.85, 0.98), 55, 98), 0.3)
    mem = _mem(rng, model, lo, 0.95)
    return _GpuPlan(levels, mem, int(mem * 0.8), 1, 1)


def plant_healthy(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    model = rng.choice(list(CATALOG))
    n = rng.choice((1, 2, 4, 8))
    return _Shape("healthy", frozenset(), model, n), [_steady(rng, cal, model) for _ in range(n)]


def plant_empty_lease(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    model = rng.choice(list(CATALOG))
    n = rng.choice((1, 2, 4, 8))
    plans = [_GpuPlan([0.0] * cal.hours, 0, rng.randint(0, 400), 0, 0, spike=1.5) for _ in range(n)]
    return _Shape("empty_lease", frozenset({Rule.EMPTY_LEASE}), model, n), plans


def plant_idle(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    """Busy, then idle for 30 hours to 8 days with its processes (and memory) still held;
    or never busy at all (a notebook left open)."""
    model = rng.choice(list(CATALOG))
    n = rng.choice((1, 2, 4, 8))
    never = rng.random() < 0.35
    idle_for = rng.randint(30, min(8 * 24, cal.hours - 24))
    plans = []
    for _ in range(n):
        busy = _active(rng, cal.hours, rng.uniform(0.6, 0.9), 50, 95)
        levels = [0.0] * cal.hours if never else _trailing_idle(busy, idle_for, 80.0)
        mem = _mem(rng, model, 0.1, 0.9)
        plans.append(_GpuPlan(_with_light(rng, levels, 0.02), mem, mem, 1, 1))
    return _Shape("idle_gpus", frozenset({Rule.IDLE_GPUS}), model, n), plans


def plant_bursty(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    """Look-alike of idle: long idle gaps between bursts, but busy within the last 18 hours."""
    model = rng.choice(list(CATALOG))
    n = rng.choice((1, 2, 4, 8))
    pattern: list[float] = [0.0] * rng.randint(0, 18)  # built backwards from the end
    while len(pattern) < cal.hours:
        pattern += [rng.uniform(60, 95) for _ in range(rng.randint(12, 48))]
        pattern += [0.0] * rng.randint(20, 60)
    pattern = pattern[: cal.hours][::-1]
    mem = _mem(rng, model, 0.6, 0.95)
    plans = [_GpuPlan(list(pattern), mem, mem // 2, 1, 1) for _ in range(n)]
    return _Shape("bursty", frozenset(), model, n), plans


def _light_load(
    rng: random.Random, cal: _Calendar, model: str, mems: list[int], lo: float, hi: float
) -> list[_GpuPlan]:
    """Busy hours at p95 in [lo, hi] around the clock, the other hours light (never idle)."""
    plans = []
    for mem in mems:
        levels = _active(rng, cal.hours, rng.uniform(0.6, 0.9), lo, hi)
        levels = [lv or rng.uniform(8, 15) for lv in levels]
        levels[-3:] = [(lo + hi) / 2] * 3
        plans.append(_GpuPlan(levels, mem, mem // 2, 1, 1))
    return plans


SLICEABLE = ("H100-80GB", "A100-80GB", "L40S")  # cards with a cheaper alternative
# Cards a light job can leave for a cheaper one that still carries its compute (an L40S job
# at 30% would need more than an L4 has).
OVERSIZABLE = ("H100-80GB", "A100-80GB")


def plant_oversized(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    """Busy hours at p95 22-34% and peak memory well inside a cheaper card (or slice)."""
    model, n = rng.choice(OVERSIZABLE), rng.choice((1, 2, 4))
    limit = _fit_limit(model, Thresholds())
    mems = [rng.randint(int(limit * 0.3), int(limit * 0.85)) for _ in range(n)]
    plans = _light_load(rng, cal, model, mems, *PLANTED_LOAD)
    return _Shape("oversized_gpu", frozenset({Rule.OVERSIZED_GPU}), model, n), plans


def plant_memory_heavy(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    """Look-alike of oversized: light on SM, but no cheaper card holds its memory."""
    model, n = rng.choice(SLICEABLE), rng.choice((1, 2, 4))
    limit, card_mib = _fit_limit(model, Thresholds()), CATALOG[model].memory_mib
    mems = [rng.randint(int(limit * 1.08), int(card_mib * 0.95)) for _ in range(n)]
    plans = _light_load(rng, cal, model, mems, *PLANTED_LOAD)
    return _Shape("memory_heavy", frozenset(), model, n), plans


def plant_compute_heavy(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    """Look-alike of oversized: little memory, but busy hours run hot."""
    model, n = rng.choice(SLICEABLE), rng.choice((1, 2, 4))
    mems = [rng.randint(2048, 12288) for _ in range(n)]
    return _Shape("compute_heavy", frozenset(), model, n), _light_load(
        rng, cal, model, mems, 60, 95
    )


def _k_of_n(
    rng: random.Random, cal: _Calendar, model: str, n: int, k: int, weak_share: float
) -> list[_GpuPlan]:
    """k GPUs busy around the clock, the other n - k busy on ``weak_share`` of hours."""
    plans = [_steady(rng, cal, model, lo=0.6) for _ in range(k)]
    plans[0].levels[-2:] = [80.0, 80.0]
    for _ in range(n - k):
        levels = _active(rng, cal.hours, weak_share, 50, 90)
        plans.append(_GpuPlan(levels, _mem(rng, model, 0.5, 0.9), rng.randint(600, 2048), 1, 1))
    return plans


def plant_underused(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    """k of n GPUs busy (the rest on under 4% of hours), on a resizable tenancy."""
    model = rng.choice(list(CATALOG))
    n = rng.choice((2, 4, 8))
    nodes = 2 if n == 8 and rng.random() < 0.3 else 1
    k = rng.randint(1, n - nodes)  # so that ceil(k / nodes) * nodes < n
    plans = _k_of_n(rng, cal, model, n, k, rng.uniform(0.0, 0.04))
    kind = rng.choice(("vm", "kubernetes", "slurm"))
    shape = _Shape(
        "underused_multi_gpu", frozenset({Rule.UNDERUSED_MULTI_GPU}), model, n // nodes, nodes, kind
    )
    return shape, plans


def plant_weak_gpu(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    """Look-alike of underused: its least busy GPUs still busy on 16-30% of hours."""
    model = rng.choice(list(CATALOG))
    n = rng.choice((2, 4, 8))
    k = rng.randint(1, n - 1)
    return _Shape("weak_gpu", frozenset(), model, n), _k_of_n(
        rng, cal, model, n, k, rng.uniform(0.16, 0.3)
    )


def plant_bare_metal(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    """Look-alike of underused: k of n busy, but bare metal cannot shrink in place."""
    model = rng.choice(list(CATALOG))
    n = rng.choice((2, 4, 8))
    plans = _k_of_n(rng, cal, model, n, rng.randint(1, n - 1), 0.02)
    return _Shape("bare_metal_underused", frozenset(), model, n, kind="bare_metal"), plans


def _day_job(rng: random.Random, cal: _Calendar, busy_nights: float) -> list[float]:
    """Busy by day (weekends less); nights idle except ``busy_nights`` of them."""
    levels = []
    night_busy = False
    for h in range(cal.hours):
        if cal.night[h]:
            if h == 0 or not cal.night[h - 1]:
                night_busy = rng.random() < busy_nights
            busy = night_busy or rng.random() < 0.02
        else:
            busy = rng.random() < (0.5 if cal.weekend[h] else 0.85)
        levels.append(rng.uniform(55, 95) if busy else 0.0)
    return levels


def _day_shape(
    rng: random.Random, cal: _Calendar, busy_nights: float
) -> tuple[str, int, list[_GpuPlan]]:
    model = rng.choice(list(CATALOG))
    n = rng.choice((1, 2, 4))
    levels = _day_job(rng, cal, busy_nights)
    mem = _mem(rng, model, 0.6, 0.95)
    return model, n, [_GpuPlan(list(levels), mem, mem // 2, 1, 1) for _ in range(n)]


def plant_night_idle(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    model, n, plans = _day_shape(rng, cal, 0.0)
    return _Shape("night_idle", frozenset({Rule.NIGHT_IDLE}), model, n), plans


def plant_some_nights(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    """Look-alike of night idle: day-heavy, but busy on 30-60% of nights."""
    model, n, plans = _day_shape(rng, cal, rng.uniform(0.3, 0.6))
    return _Shape("some_nights", frozenset(), model, n), plans


def plant_new_lease(rng: random.Random, cal: _Calendar) -> tuple[_Shape, list[_GpuPlan]]:
    """Look-alike of empty lease: nothing running yet, but only 4-20 hours old."""
    shape, plans = plant_empty_lease(rng, cal)
    age = rng.randint(4, 20)
    for p in plans:
        p.levels[: cal.hours - age] = [-1.0] * (cal.hours - age)
    return _Shape("new_lease", frozenset(), shape.model, shape.gpus_per_node), plans


# one cycle of tenancy profiles, shuffled per cycle: rates of waste and look-alikes
TENANCY_CYCLE: tuple[Planter, ...] = (
    plant_empty_lease,
    plant_empty_lease,
    plant_idle,
    plant_idle,
    plant_oversized,
    plant_oversized,
    plant_underused,
    plant_underused,
    plant_night_idle,
    plant_night_idle,
    plant_bursty,
    plant_bursty,
    plant_memory_heavy,
    plant_compute_heavy,
    plant_weak_gpu,
    plant_bare_metal,
    plant_some_nights,
    plant_new_lease,
    plant_healthy,
    plant_healthy,
)


# ---------------------------------------------------------------- endpoints

TARGETS = (500, 1000, 2000)  # tokens/s one replica is sized for
REPLICA_MODELS = ("L40S", "L4", "H100-80GB")


@dataclass(frozen=True, slots=True)
class _EndpointShape:
    profile: str
    expected: frozenset[Rule]
    replicas: int
    min_replicas: int
    max_replicas: int
    tokens: list[float]


EndpointPlanter = Callable[[random.Random, _Calendar, float], _EndpointShape]
DAY_CURVE = tuple(max(0.0, math.sin(math.pi * (h - 6) / 16)) for h in range(24))


def _traffic(rng: random.Random, cal: _Calendar, peak: float) -> list[float]:
    """Diurnal traffic whose busiest hour is exactly ``peak`` tokens/s."""
    raw = [(0.3 + 0.7 * DAY_CURVE[lh]) * rng.uniform(0.85, 1.0) for lh in cal.local]
    top = max(raw)
    return [v * peak / top for v in raw]


def _peak_for(rng: random.Random, capacity: float, needed: int) -> float:
    """A peak that needs exactly ``needed`` replicas of ``capacity`` tokens/s each."""
    low = 0.2 if needed == 1 else needed - 1 + 0.1
    return capacity * rng.uniform(low, needed - 0.05)


def plant_busy_endpoint(rng: random.Random, cal: _Calendar, cap: float) -> _EndpointShape:
    r = rng.randint(1, 6)
    return _EndpointShape(
        "healthy", frozenset(), r, r, r, _traffic(rng, cal, _peak_for(rng, cap, r))
    )


def plant_idle_endpoint(rng: random.Random, cal: _Calendar, cap: float) -> _EndpointShape:
    """No tokens for the last 30 hours to 8 days; or autoscaled down to its minimum of 1."""
    r = rng.randint(1, 4)
    tokens = _traffic(rng, cal, _peak_for(rng, cap, r))
    idle_for = rng.randint(30, min(8 * 24, cal.hours - 24))
    tokens[-idle_for:] = [0.0] * idle_for
    if rng.random() < 0.3:
        return _EndpointShape("idle_endpoint", frozenset({Rule.IDLE_ENDPOINT}), 1, 1, r, tokens)
    return _EndpointShape("idle_endpoint", frozenset({Rule.IDLE_ENDPOINT}), r, r, r, tokens)


def plant_quiet_endpoint(rng: random.Random, cal: _Calendar, cap: float) -> _EndpointShape:
    """Look-alike of idle: no tokens for the last 6-20 hours only."""
    r = rng.randint(1, 4)
    tokens = _traffic(rng, cal, _peak_for(rng, cap, r))
    quiet = rng.randint(6, 20)
    tokens[-quiet:] = [0.0] * quiet
    return _EndpointShape("quiet_endpoint", frozenset(), r, r, r, tokens)


def plant_over_replicated(rng: random.Random, cal: _Calendar, cap: float) -> _EndpointShape:
    """3-8 replicas where fewer carry the peak (fixed size, or stuck at a high minimum)."""
    r = rng.randint(3, 8)
    needed = rng.randint(1, r - 1)
    tokens = _traffic(rng, cal, _peak_for(rng, cap, needed))
    top = r if rng.random() < 0.6 else r + 2
    rule = frozenset({Rule.OVER_REPLICATED_ENDPOINT})
    return _EndpointShape("over_replicated_endpoint", rule, r, r, top, tokens)


def plant_peaky_endpoint(rng: random.Random, cal: _Calendar, cap: float) -> _EndpointShape:
    """Look-alike of over-replicated: low on average, but a few peak hours need every replica."""
    r = rng.randint(2, 6)
    tokens = [cap * r * rng.uniform(0.05, 0.2) for _ in range(cal.hours)]
    peak = _peak_for(rng, cap, r)
    for h in rng.sample(range(cal.hours - 24), rng.randint(3, 8)):
        tokens[h] = peak * rng.uniform(0.9, 1.0)
    tokens[rng.randrange(cal.hours - 24)] = peak
    return _EndpointShape("peaky_endpoint", frozenset(), r, r, r, tokens)


ENDPOINT_CYCLE: tuple[EndpointPlanter, ...] = (
    plant_idle_endpoint,
    plant_idle_endpoint,
    plant_over_replicated,
    plant_over_replicated,
    plant_quiet_endpoint,
    plant_peaky_endpoint,
    plant_peaky_endpoint,
    plant_busy_endpoint,
)


# ---------------------------------------------------------------- the fleet

DEFAULT_START = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday


def generate(
    gpus: int = 600,
    days: int = 14,
    *,
    start: datetime = DEFAULT_START,
    seed: int = 0,
    utc_offset_hours: int = -5,
    region: str = "ca-east-1",
    pue: float = 1.2,
    grid_g_per_kwh: float = 30.0,
) -> Fleet:
    """A fleet of about ``gpus`` GPUs (endpoint replicas included) over ``days`` days."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible test fleet, not a secret
    hours = days * 24
    th = Thresholds()
    cal = _Calendar.of(start, hours, utc_offset_hours, th)
    fleet = Fleet(start, hours, utc_offset_hours, region, pue, grid_g_per_kwh)
    fleet.noise = [rng.random() for _ in range(NOISE_SIZE)]
    fleet.hour_starts = [start + timedelta(hours=h) for h in range(hours)]
    fleet.local_hours = list(cal.local)
    count = 0
    for i in range(max(40, gpus // 15)):
        if i % len(ENDPOINT_CYCLE) == 0:
            endpoint_cycle = rng.sample(ENDPOINT_CYCLE, len(ENDPOINT_CYCLE))
        count += _add_endpoint(fleet, rng, cal, i, endpoint_cycle[i % len(ENDPOINT_CYCLE)])
    i = 0
    while count < gpus:
        if i % len(TENANCY_CYCLE) == 0:
            tenancy_cycle = rng.sample(TENANCY_CYCLE, len(TENANCY_CYCLE))
        shape, plans = tenancy_cycle[i % len(TENANCY_CYCLE)](rng, cal)
        count += _add_tenancy(fleet, rng, cal, f"t-{i:05d}", shape, plans)
        i += 1
    return fleet


def _add_tenancy(
    fleet: Fleet,
    rng: random.Random,
    cal: _Calendar,
    tid: str,
    shape: _Shape,
    plans: list[_GpuPlan],
    endpoint_id: str | None = None,
) -> int:
    late = 0
    if shape.profile != "new_lease" and cal.hours > 240 and rng.random() < 0.2:
        late = rng.randint(0, cal.hours - 120)  # leased during the window
    rand = rng.random
    for p in plans:
        p.levels = [
            -1.0 if h < late or rand() < MISSING_HOUR_RATE else lv for h, lv in enumerate(p.levels)
        ]
    n = len(plans)
    fleet.tenancies.append(
        PlantedTenancy(
            tenancy_id=tid,
            org_id=f"org-{rng.randint(1, 25):02d}",
            name=f"{shape.profile}-{tid}",
            kind=shape.kind,
            region=fleet.region,
            gpu_model=shape.model,
            gpu_milli=1000,
            gpus_per_node=shape.gpus_per_node,
            node_count=shape.node_count,
            endpoint_id=endpoint_id,
            gpu_ids=tuple(f"{tid}-g{g}" for g in range(n)),
            expected=shape.expected,
            profile=shape.profile,
            resizable=shape.kind != "bare_metal",
        )
    )
    fleet.plans[tid] = plans
    return n


def _add_endpoint(
    fleet: Fleet, rng: random.Random, cal: _Calendar, i: int, planter: EndpointPlanter
) -> int:
    target = rng.choice(TARGETS)
    shape = planter(rng, cal, target * Thresholds().endpoint_target_utilization)
    eid = f"ep-{i:04d}"
    model = rng.choice(REPLICA_MODELS)
    endpoint = PlantedEndpoint(
        endpoint_id=eid,
        org_id=f"org-{rng.randint(1, 25):02d}",
        name=f"{shape.profile}-{eid}",
        replicas=shape.replicas,
        min_replicas=shape.min_replicas,
        max_replicas=shape.max_replicas,
        target_tokens_per_s=target,
        gpu_model=model,
        tokens_per_s=tuple(shape.tokens),
        expected=shape.expected,
        profile=shape.profile,
    )
    fleet.endpoints.append(endpoint)
    load = [
        min(95.0, 25 + 100 * tok / (shape.replicas * target)) if tok else 0.0
        for tok in shape.tokens
    ]
    mem = _mem(rng, model, 0.6, 0.9)
    plans = [_GpuPlan(list(load), mem, mem, 1, 1) for _ in range(shape.replicas)]
    replica = _Shape("replica", frozenset(), model, 1, shape.replicas, "kubernetes")
    return _add_tenancy(fleet, rng, cal, f"{eid}-r", replica, plans, endpoint_id=eid)


# ---------------------------------------------------------------- reference features


def fleet_features(
    fleet: Fleet, th: Thresholds | None = None
) -> tuple[list[TenancyFeatures], list[EndpointFeatures]]:
    """The rules' inputs for the whole fleet, computed from its rows."""
    th = th or Thresholds()
    tenancies = [features_from_rows(fleet, t, fleet.tenancy_rows(t), th) for t in fleet.tenancies]
    return tenancies, [endpoint_features(fleet, e) for e in fleet.endpoints]


def features_from_rows(
    fleet: Fleet, t: PlantedTenancy, rows: Iterable[HourRow], th: Thresholds
) -> TenancyFeatures:
    """A tenancy's features from its hourly rows (ordered by GPU, then hour)."""
    night = tuple(_is_night(h, th) for h in range(24))
    gpus = tuple(
        _gpu_features(gpu_id, group, th, night)
        for gpu_id, group in itertools.groupby(rows, key=_gpu_of)
    )
    model = CATALOG[t.gpu_model]
    return TenancyFeatures(
        tenancy_id=t.tenancy_id,
        org_id=t.org_id,
        name=t.name,
        kind=t.kind,
        region=t.region,
        gpu_model=t.gpu_model,
        gpu_milli=t.gpu_milli,
        gpus_per_node=t.gpus_per_node,
        node_count=t.node_count,
        endpoint_id=t.endpoint_id,
        window_start=fleet.start,
        window_end=fleet.end,
        hourly_price=price_of(t.gpu_model, t.gpu_milli),
        currency=CURRENCY,
        pue=fleet.pue,
        grid_g_per_kwh=fleet.grid_g_per_kwh,
        gpus=gpus,
        alternatives=alternatives_for(t.gpu_model, t.gpu_milli),
        resizable=t.resizable,
        tdp_watts=model.tdp_watts,
    )


def _gpu_of(row: HourRow) -> str:
    return row[0]


def _gpu_features(
    gpu_id: str, rows: Iterable[HourRow], th: Thresholds, night: tuple[bool, ...]
) -> GpuFeatures:
    idle_pct, busy_pct = th.idle_util_pct, th.busy_util_pct
    hours = idle = busy = nights = night_idle = days = day_busy = proc_max = mem_max = total = 0
    util_sum = p95_max = busy_p95 = power = energy = 0.0
    last: datetime | None = None
    for _g, _t, hour, local, mean, p95, peak, _mm, mem, mem_total, pw, wh, proc, _s in rows:
        hours += 1
        total = mem_total
        util_sum += mean
        power += pw
        energy += wh
        p95_max = max(p95_max, p95)
        mem_max = max(mem_max, mem)
        proc_max = max(proc_max, proc)
        is_idle = peak < idle_pct
        idle += is_idle
        if p95 >= busy_pct:
            busy += 1
            busy_p95 += p95
            last = hour
        if night[local]:
            nights += 1
            night_idle += is_idle
        else:
            days += 1
            day_busy += p95 >= busy_pct
    return GpuFeatures(
        gpu_id=gpu_id,
        hours=hours,
        idle_hours=idle,
        busy_hours=busy,
        util_mean=util_sum / hours,
        util_p95_max=p95_max,
        busy_util_p95_mean=busy_p95 / busy if busy else 0.0,
        mem_max_mib=mem_max,
        mem_total_mib=total,
        proc_max=proc_max,
        power_mean_w=power / hours,
        energy_wh=energy,
        last_busy_at=last,
        night_hours=nights,
        night_idle_hours=night_idle,
        day_hours=days,
        day_busy_hours=day_busy,
    )


def endpoint_features(fleet: Fleet, e: PlantedEndpoint) -> EndpointFeatures:
    """An endpoint's features from its hourly token series."""
    tokens = e.tokens_per_s
    last = max((h for h, tok in enumerate(tokens) if tok > 0), default=None)
    mean = sum(tokens) / len(tokens)
    model = CATALOG[e.gpu_model]
    load = min(1.0, mean / (e.replicas * e.target_tokens_per_s)) if e.replicas else 0.0
    return EndpointFeatures(
        endpoint_id=e.endpoint_id,
        org_id=e.org_id,
        name=e.name,
        region=fleet.region,
        replicas=e.replicas,
        min_replicas=e.min_replicas,
        max_replicas=e.max_replicas,
        target_tokens_per_s=e.target_tokens_per_s,
        hours=len(tokens),
        peak_tokens_per_s=max(tokens),
        mean_tokens_per_s=mean,
        last_token_at=None if last is None else fleet.hour_starts[last],
        window_start=fleet.start,
        window_end=fleet.end,
        replica_hourly_price=price_of(e.gpu_model),
        currency=CURRENCY,
        replica_power_w=model.idle_watts + (model.tdp_watts - model.idle_watts) * load,
        pue=fleet.pue,
        grid_g_per_kwh=fleet.grid_g_per_kwh,
    )
