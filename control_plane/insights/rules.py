"""Waste rules: pure functions from one window's features to findings.

Every rule reads plain :mod:`~control_plane.insights.features` values and returns at most
one :class:`~control_plane.insights.findings.Finding`; there is no I/O, so the rules cost
O(GPUs) and are tested and benchmarked without a database.

A tenancy's rules run in the order of :data:`TENANCY_RULES`. ``empty_lease`` and
``idle_gpus`` are exclusive: once one fires (releasing the whole tenancy) no other rule
looks at it. The others are chained so that money and energy are never counted twice: each
rule applies its action to what the earlier ones left (:class:`Remaining`), so
``underused_multi_gpu`` shrinks to k GPUs, ``oversized_gpu`` then prices a cheaper card for
those k only, and ``night_idle`` prices the nights of the k (cheaper) GPUs. Applying every
action of a tenancy saves the sum of their savings. Endpoint replicas (tenancies with an
``endpoint_id``) are left to the endpoint rules, which scale the endpoint itself.

Numbers:

* money: ``Decimal`` in the tenancy's currency, monthly (``hours_per_month``), quantized to
  cents half-even once, on the finding;
* energy: watts given back x hours per month x the region's PUE / 1000, in kWh (one decimal);
  the watts are the measured mean draw of the GPUs released (``power_mean_w``) or, for a
  cheaper card, the draw scaled by the ratio of the cards' TDPs (none claimed when the
  tenancy's ``tdp_watts`` is unknown);
* CO2e: the unrounded kWh x the region's grid intensity (g/kWh) / 1000, in kg (one decimal);
* confidence: ``evidence x margin``, each in [0.5, 1]: evidence grows with the hours of
  telemetry up to a week (``0.5 + 0.5 x min(1, hours / 168)``), margin with the relative
  distance of the deciding metric from its threshold (``0.5 + 0.5 x clamp(distance)``);
* ``wasted_gpu_hours``: GPU-hours of the window the finding calls waste (replica-hours for
  endpoints).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from control_plane.insights.features import (
    Alternative,
    EndpointFeatures,
    GpuFeatures,
    TenancyFeatures,
    Thresholds,
)
from control_plane.insights.findings import Action, ActionKind, Finding, Rule

CENT = Decimal("0.01")
TENTH = Decimal("0.1")
HOUR = timedelta(hours=1)
FULL_EVIDENCE_HOURS = 168  # a week of telemetry gives full evidence
EMPTY_MEM_MIB = 512  # a lease is empty when no GPU ever held more than this...
EMPTY_MEM_SHARE = 0.01  # ...or this share of the card, whichever is larger
QUIET_SHARE = 0.8  # an idle stretch must be mostly quiet hours (peak below idle_util_pct)
NIGHT_RELEASE_MINUTES = 60


@dataclass(slots=True)
class Remaining:
    """What a tenancy still holds once the earlier findings' actions are applied."""

    gpus: list[GpuFeatures]  # the GPUs kept, busiest first
    gpus_per_node: int
    node_count: int
    gpu_model: str
    gpu_milli: int
    price: Decimal  # per GPU per hour
    power_factor: float = 1.0  # share of each kept GPU's measured draw still drawn
    count: int = field(init=False)

    def __post_init__(self) -> None:
        self.count = self.gpus_per_node * self.node_count


TenancyRule = Callable[[TenancyFeatures, Thresholds, Remaining], Finding | None]
EndpointRule = Callable[[EndpointFeatures, Thresholds], Finding | None]


# ---------------------------------------------------------------- arithmetic and wording


def dec(value: float) -> Decimal:
    """A float as the decimal it prints as (so 0.1 stays 0.1)."""
    return Decimal(repr(value))


def money(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, ROUND_HALF_EVEN)


def footprint(watts: Decimal, hours: Decimal, pue: float, grid: float) -> tuple[Decimal, Decimal]:
    """(kWh, kg CO2e) of drawing ``watts`` for ``hours`` in a region, each to one decimal."""
    kwh = watts * hours * dec(pue) / 1000
    co2e = kwh * dec(grid) / 1000
    return kwh.quantize(TENTH, ROUND_HALF_EVEN), co2e.quantize(TENTH, ROUND_HALF_EVEN)


def confidence(hours: float, distance: float) -> float:
    evidence = 0.5 + 0.5 * min(1.0, max(0.0, hours / FULL_EVIDENCE_HOURS))
    margin = 0.5 + 0.5 * min(1.0, max(0.0, distance))
    return round(evidence * margin, 2)


def duration(hours: float) -> str:
    """``3 days 4 hours``, ``1 day``, ``7 hours``."""
    days, rest = divmod(round(hours), 24)
    parts = [f"{days} day{'s' * (days != 1)}"] if days else []
    if rest or not days:
        parts.append(f"{rest} hour{'s' * (rest != 1)}")
    return " ".join(parts)


def gib(mib: float) -> str:
    value = mib / 1024
    return f"{value:.0f} GiB" if value >= 10 and value == round(value) else f"{value:.1f} GiB"


def card(model: str, milli: int) -> str:
    return model if milli >= 1000 else f"{milli / 1000:g} {model}"


def _hours_between(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 3600


def _watts(gpus: Iterable[GpuFeatures], count: int) -> Decimal:
    """Measured draw of ``count`` GPUs: their mean draw, times the count."""
    draws = [dec(g.power_mean_w) for g in gpus]
    return sum(draws, Decimal(0)) / len(draws) * count if draws else Decimal(0)


def _window(start: datetime, end: datetime, hours: int) -> dict[str, Any]:
    return {"window_start": start.isoformat(), "window_end": end.isoformat(), "hours": hours}


def _tenancy_finding(
    t: TenancyFeatures,
    rule: Rule,
    *,
    title: str,
    action: Action,
    savings: Decimal,
    watts: Decimal,
    month_hours: Decimal,
    distance: float,
    evidence: dict[str, Any],
    wasted: float,
) -> Finding:
    hours = max(g.hours for g in t.gpus)
    kwh, co2e = footprint(watts, month_hours, t.pue, t.grid_g_per_kwh)
    return Finding(
        rule=rule,
        org_id=t.org_id,
        target_kind="tenancy",
        target_id=t.tenancy_id,
        target_name=t.name,
        region=t.region,
        title=title,
        action=action,
        monthly_savings=money(savings),
        currency=t.currency,
        energy_kwh_month=kwh,
        co2e_kg_month=co2e,
        confidence=confidence(hours, distance),
        evidence=_window(t.window_start, t.window_end, hours) | evidence,
        wasted_gpu_hours=round(wasted, 1),
    )


# ---------------------------------------------------------------- tenancy rules


def empty_lease(t: TenancyFeatures, th: Thresholds, left: Remaining) -> Finding | None:
    """No process and (almost) no memory on any GPU for the whole window: release it."""
    for g in t.gpus:
        tiny = max(EMPTY_MEM_MIB, EMPTY_MEM_SHARE * g.mem_total_mib)
        if g.proc_max > 0 or g.busy_hours > 0 or g.mem_max_mib > tiny:
            return None
    hours = max(g.hours for g in t.gpus)
    n = t.gpu_count
    return _tenancy_finding(
        t,
        Rule.EMPTY_LEASE,
        title=f"Nothing running on {n} x {card(t.gpu_model, t.gpu_milli)} for {duration(hours)}",
        action=Action(ActionKind.RELEASE, {}, "Release the tenancy"),
        savings=t.hourly_price * n * th.hours_per_month,
        watts=_watts(t.gpus, n),
        month_hours=Decimal(th.hours_per_month),
        distance=1.0,
        evidence={"gpu_count": n, "proc_max": 0, "mem_max_mib": max(g.mem_max_mib for g in t.gpus)},
        wasted=float(sum(g.hours for g in t.gpus)),
    )


def idle_gpus(t: TenancyFeatures, th: Thresholds, left: Remaining) -> Finding | None:
    """Every GPU idle for the trailing ``idle_hours``: release it.

    Idle for means: since the end of the tenancy's last busy hour (or, never busy, all its
    hours); the stretch must also be quiet: each GPU has at least ``QUIET_SHARE`` of it in
    hours whose peak stayed below ``idle_util_pct`` (a steady light load is not idle).
    """
    hours = max(g.hours for g in t.gpus)
    last = max((g.last_busy_at for g in t.gpus if g.last_busy_at is not None), default=None)
    idle_for = float(hours) if last is None else _hours_between(t.window_end, last + HOUR)
    idle_for = min(idle_for, float(hours))
    if idle_for < th.idle_hours:
        return None
    if any(g.idle_hours < QUIET_SHARE * min(idle_for, g.hours) for g in t.gpus):
        return None
    n = t.gpu_count
    return _tenancy_finding(
        t,
        Rule.IDLE_GPUS,
        title=f"{n} x {card(t.gpu_model, t.gpu_milli)} idle for {duration(idle_for)}",
        action=Action(ActionKind.RELEASE, {}, "Release the tenancy"),
        savings=t.hourly_price * n * th.hours_per_month,
        watts=_watts(t.gpus, n),
        month_hours=Decimal(th.hours_per_month),
        distance=(idle_for - th.idle_hours) / th.idle_hours,
        evidence={
            "gpu_count": n,
            "idle_for_hours": round(idle_for, 1),
            "last_busy_at": last.isoformat() if last else None,
            "util_p95_max": round(max(g.util_p95_max for g in t.gpus), 1),
            "proc_max": max(g.proc_max for g in t.gpus),
        },
        wasted=idle_for * n,
    )


def _busy_share(g: GpuFeatures) -> float:
    return g.busy_hours / g.hours if g.hours else 0.0


def underused_multi_gpu(t: TenancyFeatures, th: Thresholds, left: Remaining) -> Finding | None:
    """k of n GPUs busy in at least ``gpu_busy_share`` of hours: shrink to k (per node).

    Needs telemetry from every GPU: a GPU that reported nothing is not known to be unused.
    """
    n = t.gpu_count
    if n < 2 or not t.resizable or len(t.gpus) < n:
        return None
    ranked = sorted(t.gpus, key=_busy_share, reverse=True)
    k = sum(1 for g in ranked if _busy_share(g) >= th.gpu_busy_share)
    per_node = math.ceil(k / t.node_count)
    keep = per_node * t.node_count
    if k < 1 or keep >= n:
        return None
    removed = ranked[keep:]
    unused_share = max((_busy_share(g) for g in ranked[k:]), default=0.0)
    left.gpus, left.gpus_per_node, left.count = ranked[:keep], per_node, keep
    model = card(t.gpu_model, t.gpu_milli)
    hours = max(g.hours for g in t.gpus)
    return _tenancy_finding(
        t,
        Rule.UNDERUSED_MULTI_GPU,
        title=f"{k} of {n} GPUs busy over {duration(hours)}: shrink to {keep}",
        action=Action(
            ActionKind.RESIZE,
            {
                "gpu_model": t.gpu_model,
                "gpu_milli": t.gpu_milli,
                "gpus_per_node": per_node,
                "node_count": t.node_count,
            },
            f"Resize to {keep} x {model}",
        ),
        savings=t.hourly_price * (n - keep) * th.hours_per_month,
        watts=_watts(removed, n - keep) if removed else _watts(t.gpus, n - keep),
        month_hours=Decimal(th.hours_per_month),
        distance=1 - unused_share / th.gpu_busy_share,
        evidence={
            "gpu_count": n,
            "busy_gpus": k,
            "keep_gpus": keep,
            "busy_share": [round(_busy_share(g), 3) for g in ranked],
            "gpu_busy_share": th.gpu_busy_share,
        },
        wasted=float(sum(g.hours for g in removed)),
    )


def _cheapest_fit(
    t: TenancyFeatures, th: Thresholds, left: Remaining, peak_mib: int, load: float
) -> Alternative | None:
    """The cheapest other card or slice that holds the peak memory with headroom and whose
    compute carries the load: compute is taken as proportional to the card's TDP (a proxy
    that holds within a generation and errs on the safe side across them), so the load
    projected onto it, ``load x held TDP / its TDP``, must stay within ``compute_fit_pct``.
    Slices are for one GPU only (a share of a GPU is for a single-GPU tenancy)."""
    held_tdp = t.tdp_watts * left.gpu_milli / 1000
    for alt in sorted(t.alternatives, key=lambda a: a.hourly_price):
        if alt.hourly_price >= left.price:
            return None
        if alt.gpu_model == left.gpu_model and alt.gpu_milli == left.gpu_milli:
            continue
        if alt.gpu_milli < 1000 and left.count > 1:
            continue
        if peak_mib > th.memory_headroom * alt.memory_mib:
            continue
        if held_tdp and alt.tdp_watts and load * held_tdp / alt.tdp_watts > th.compute_fit_pct:
            continue
        return alt
    return None


def oversized_gpu(t: TenancyFeatures, th: Thresholds, left: Remaining) -> Finding | None:
    """Peak memory fits a cheaper card (or slice) with headroom and busy hours run light.

    Load is the highest per-GPU mean p95 over busy hours (the highest hourly p95 when a GPU
    was never busy). Priced on the GPUs an earlier shrink kept.
    """
    gpus = left.gpus
    peak = max(g.mem_max_mib for g in gpus)
    load = max(g.busy_util_p95_mean if g.busy_hours else g.util_p95_max for g in gpus)
    if load > th.oversized_util_pct:
        return None
    alt = _cheapest_fit(t, th, left, peak, load)
    if alt is None:
        return None
    held_tdp = t.tdp_watts * t.gpu_milli / 1000  # the draw budget of the share now held
    ratio = alt.tdp_watts / held_tdp if held_tdp else 1.0
    saved_watts = _watts(gpus, left.count) * dec(max(0.0, 1 - ratio)) * dec(left.power_factor)
    price_before, hours = left.price, sum(g.hours for g in gpus) / len(gpus)
    left.gpu_model, left.gpu_milli, left.price = alt.gpu_model, alt.gpu_milli, alt.hourly_price
    left.power_factor *= min(1.0, ratio)
    memory = max(g.mem_total_mib for g in gpus)
    alt_card = card(alt.gpu_model, alt.gpu_milli)
    return _tenancy_finding(
        t,
        Rule.OVERSIZED_GPU,
        title=f"Peak memory {gib(peak)} of {gib(memory)}, busy p95 {load:.0f}%: {alt_card} fits",
        action=Action(
            ActionKind.RESIZE,
            {
                "gpu_model": alt.gpu_model,
                "gpu_milli": alt.gpu_milli,
                "gpus_per_node": left.gpus_per_node,
                "node_count": left.node_count,
            },
            f"Resize to {left.count} x {alt_card}",
        ),
        savings=(price_before - alt.hourly_price) * left.count * th.hours_per_month,
        watts=saved_watts,
        month_hours=Decimal(th.hours_per_month),
        distance=min(
            1 - peak / (th.memory_headroom * alt.memory_mib), 1 - load / th.oversized_util_pct
        ),
        evidence={
            "mem_max_mib": peak,
            "mem_total_mib": memory,
            "busy_util_p95": round(load, 1),
            "alternative": alt_card,
            "alternative_memory_mib": alt.memory_mib,
            "gpu_count": left.count,
        },
        wasted=left.count * hours * float(1 - alt.hourly_price / price_before),
    )


def night_idle(t: TenancyFeatures, th: Thresholds, left: Remaining) -> Finding | None:
    """Idle on ``night_idle_share`` of local night hours, busy ``day_busy_share`` by day.

    Needs three nights of evidence per GPU; the action gives GPUs back after an idle hour so a
    time-of-day pool can reuse them. Savings: the night's share of the day, on the GPUs (and
    at the price) the earlier findings left.
    """
    night_len = (th.night_end - th.night_start) % 24
    gpus = left.gpus
    night = sum(g.night_hours for g in gpus)
    day = sum(g.day_hours for g in gpus)
    if not night_len or not day or night < 3 * night_len * len(gpus):
        return None
    night_share = sum(g.night_idle_hours for g in gpus) / night
    day_share = sum(g.day_busy_hours for g in gpus) / day
    if night_share < th.night_idle_share or day_share < th.day_busy_share:
        return None
    fraction = Decimal(night_len) / 24
    month_hours = th.hours_per_month * fraction
    return _tenancy_finding(
        t,
        Rule.NIGHT_IDLE,
        title=f"Idle {night_share:.0%} of nights ({th.night_start:02d}:00-{th.night_end:02d}:00)"
        f", busy {day_share:.0%} of day hours: give the GPUs back at night",
        action=Action(
            ActionKind.SCHEDULE,
            {"idle_release_minutes": NIGHT_RELEASE_MINUTES},
            f"Release after {NIGHT_RELEASE_MINUTES} idle minutes; a time-of-day pool reuses "
            "the GPUs at night",
        ),
        savings=left.price * left.count * month_hours,
        watts=_watts(gpus, left.count) * dec(left.power_factor),
        month_hours=month_hours,
        distance=(night_share - th.night_idle_share) / (1 - th.night_idle_share or 1),
        evidence={
            "night_hours": night,
            "night_idle_share": round(night_share, 3),
            "day_busy_share": round(day_share, 3),
            "gpu_count": left.count,
            "gpu_model": card(left.gpu_model, left.gpu_milli),
        },
        wasted=float(sum(g.night_idle_hours for g in gpus)),
    )


# (rule, check, exclusive): an exclusive finding ends the tenancy's evaluation
TENANCY_RULES: tuple[tuple[Rule, TenancyRule, bool], ...] = (
    (Rule.EMPTY_LEASE, empty_lease, True),
    (Rule.IDLE_GPUS, idle_gpus, True),
    (Rule.UNDERUSED_MULTI_GPU, underused_multi_gpu, False),
    (Rule.OVERSIZED_GPU, oversized_gpu, False),
    (Rule.NIGHT_IDLE, night_idle, False),
)


def evaluate_tenancy(t: TenancyFeatures, th: Thresholds) -> list[Finding]:
    """Findings for one tenancy (none for endpoint replicas or under ``min_hours``)."""
    if t.endpoint_id is not None or not t.gpus or max(g.hours for g in t.gpus) < th.min_hours:
        return []
    left = Remaining(
        gpus=sorted(t.gpus, key=_busy_share, reverse=True),
        gpus_per_node=t.gpus_per_node,
        node_count=t.node_count,
        gpu_model=t.gpu_model,
        gpu_milli=t.gpu_milli,
        price=t.hourly_price,
    )
    findings: list[Finding] = []
    for _rule, check, exclusive in TENANCY_RULES:
        found = check(t, th, left)
        if found is not None:
            findings.append(found)
            if exclusive:
                break
    return findings


# ---------------------------------------------------------------- endpoint rules


def _endpoint_finding(
    e: EndpointFeatures,
    rule: Rule,
    *,
    title: str,
    params: dict[str, Any],
    summary: str,
    replicas: int,
    distance: float,
    evidence: dict[str, Any],
    wasted: float,
    th: Thresholds,
) -> Finding:
    kwh, co2e = footprint(
        dec(e.replica_power_w) * replicas, Decimal(th.hours_per_month), e.pue, e.grid_g_per_kwh
    )
    return Finding(
        rule=rule,
        org_id=e.org_id,
        target_kind="endpoint",
        target_id=e.endpoint_id,
        target_name=e.name,
        region=e.region,
        title=title,
        action=Action(ActionKind.SCALE, params, summary),
        monthly_savings=money(e.replica_hourly_price * replicas * th.hours_per_month),
        currency=e.currency,
        energy_kwh_month=kwh,
        co2e_kg_month=co2e,
        confidence=confidence(e.hours, distance),
        evidence=_window(e.window_start, e.window_end, e.hours) | evidence,
        wasted_gpu_hours=round(wasted, 1),
    )


def idle_endpoint(e: EndpointFeatures, th: Thresholds) -> Finding | None:
    """Replicas running and no tokens for the trailing ``endpoint_idle_hours``: scale to zero."""
    running = max(e.replicas, e.min_replicas)
    if running == 0:
        return None
    idle_for = (
        float(e.hours)
        if e.last_token_at is None
        else _hours_between(e.window_end, e.last_token_at + HOUR)
    )
    idle_for = min(idle_for, float(e.hours))
    if idle_for < th.endpoint_idle_hours:
        return None
    return _endpoint_finding(
        e,
        Rule.IDLE_ENDPOINT,
        title=f"No tokens for {duration(idle_for)} on {running} replica"
        f"{'s' * (running != 1)}: scale to zero",
        params={"min_replicas": 0, "max_replicas": e.max_replicas},
        summary="Scale to zero when idle (min replicas 0)",
        replicas=running,
        distance=(idle_for - th.endpoint_idle_hours) / th.endpoint_idle_hours,
        evidence={
            "idle_for_hours": round(idle_for, 1),
            "last_token_at": e.last_token_at.isoformat() if e.last_token_at else None,
            "replicas": running,
        },
        wasted=idle_for * running,
        th=th,
    )


def over_replicated_endpoint(e: EndpointFeatures, th: Thresholds) -> Finding | None:
    """Fewer replicas carry the busiest hour at the target utilization: scale down.

    needed = max(1, ceil(peak tokens/s / (target per replica x endpoint_target_utilization))).
    A fixed-size endpoint (min = max) is set to ``needed``; an autoscaled one gets its
    minimum lowered to ``needed`` and keeps its maximum.
    """
    running = max(e.replicas, e.min_replicas)
    capacity = e.target_tokens_per_s * th.endpoint_target_utilization
    if capacity <= 0:
        return None
    needed = max(1, math.ceil(round(e.peak_tokens_per_s / capacity, 6)))
    if running <= needed:
        return None
    fixed = e.min_replicas >= e.max_replicas
    params = {
        "min_replicas": min(e.min_replicas, needed),
        "max_replicas": needed if fixed else max(needed, e.max_replicas),
    }
    return _endpoint_finding(
        e,
        Rule.OVER_REPLICATED_ENDPOINT,
        title=f"Peak {e.peak_tokens_per_s:,.0f} tokens/s needs {needed} of {running} "
        f"replicas: scale down to {needed}",
        params=params,
        summary=f"Scale to {needed} replica{'s' * (needed != 1)}",
        replicas=running - needed,
        distance=1 - e.peak_tokens_per_s / (capacity * running),
        evidence={
            "replicas": running,
            "needed_replicas": needed,
            "peak_tokens_per_s": round(e.peak_tokens_per_s, 1),
            "mean_tokens_per_s": round(e.mean_tokens_per_s, 1),
            "target_tokens_per_s": e.target_tokens_per_s,
            "target_utilization": th.endpoint_target_utilization,
        },
        wasted=float((running - needed) * e.hours),
        th=th,
    )


# the first that fires is the endpoint's only finding
ENDPOINT_RULES: tuple[tuple[Rule, EndpointRule], ...] = (
    (Rule.IDLE_ENDPOINT, idle_endpoint),
    (Rule.OVER_REPLICATED_ENDPOINT, over_replicated_endpoint),
)


def evaluate_endpoint(e: EndpointFeatures, th: Thresholds) -> list[Finding]:
    """Findings for one endpoint (at most one: scaling to zero supersedes scaling down)."""
    if e.hours < th.min_hours:
        return []
    for _rule, check in ENDPOINT_RULES:
        found = check(e, th)
        if found is not None:
            return [found]
    return []


def evaluate(
    tenancies: Iterable[TenancyFeatures],
    endpoints: Iterable[EndpointFeatures],
    th: Thresholds,
) -> list[Finding]:
    """Every finding of a window: tenancies first, then endpoints, in input order."""
    findings = [f for t in tenancies for f in evaluate_tenancy(t, th)]
    findings += [f for e in endpoints for f in evaluate_endpoint(e, th)]
    return findings
