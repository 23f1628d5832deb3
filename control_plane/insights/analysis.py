"""One waste analysis: gather what the rules read (live tenancies and endpoints, their GPUs'
rollups over the window, the organization's own prices, the region's PUE and grid), run
the rules, and return the findings. Pure reads; :mod:`control_plane.insights.store` keeps
the results."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.endpoints.reads import EndpointSize, endpoint_sizes
from control_plane.insights import rules
from control_plane.insights.extract import GpuRollup, gpu_features
from control_plane.insights.features import (
    Alternative,
    EndpointFeatures,
    GpuFeatures,
    TenancyFeatures,
    Thresholds,
)
from control_plane.insights.findings import Finding
from control_plane.inventory import service as inventory
from control_plane.metering.service import endpoint_tokens_by_hour
from control_plane.tenancies.holders import LiveTenancy, live_tenancies

__all__ = ["Analysis", "GpuPricer", "analyze", "window_of"]

HOUR = timedelta(hours=1)
_SLICES = (1000, 500, 250)  # shares of a sliceable card offered as alternatives
PriceKey = tuple[str, str, str]  # org, region, tenancy kind


@runtime_checkable
class GpuPricer(Protocol):
    """Billing's answer to "what does a GPU-hour of each model cost this organization?"."""

    async def __call__(
        self,
        db: AsyncSession,
        wanted: Collection[PriceKey],
        models_by_region: Mapping[str, Collection[str]],
    ) -> dict[PriceKey, tuple[str, dict[str, Decimal]]]: ...


@dataclass(frozen=True, slots=True)
class Analysis:
    since: datetime
    until: datetime
    findings: list[Finding]
    tenancies: int  # analysed (with telemetry)
    endpoints: int
    unpriced: int  # skipped: no price book in effect for their region


def window_of(now: datetime, days: int) -> tuple[datetime, datetime]:
    until = now.replace(minute=0, second=0, microsecond=0)
    return until - timedelta(days=days), until


async def analyze(
    db: AsyncSession,
    pricer: GpuPricer,
    since: datetime,
    until: datetime,
    th: Thresholds,
    org_ids: Sequence[str] | None = None,
) -> Analysis:
    tenancies = await live_tenancies(db, org_ids)
    endpoints = await endpoint_sizes(db, org_ids)
    rollups: dict[str, list[GpuRollup]] = defaultdict(list)
    for rollup in await gpu_features(db, since, until, th, org_ids):
        rollups[rollup.tenancy_id].append(rollup)
    catalog = await inventory.gpu_model_facts(db)
    regions = await inventory.models_by_region(db)
    energy = await inventory.region_energy_facts(db)
    wanted = {(t.org_id, t.region, t.kind) for t in tenancies if t.endpoint_id is None}
    wanted |= {(e.org_id, e.region, "") for e in endpoints}
    for e in endpoints:
        regions.setdefault(e.region, set()).add(e.gpu_model)
    prices = await pricer(db, wanted, regions)
    unpriced = 0
    features: list[TenancyFeatures] = []
    for t in tenancies:
        if t.endpoint_id is not None or t.id not in rollups:
            continue  # replicas are judged as their endpoint; no telemetry: nothing to say
        priced = prices.get((t.org_id, t.region, t.kind))
        if priced is None or t.gpu_model not in priced[1]:
            unpriced += 1
            continue
        features.append(_tenancy(t, rollups[t.id], priced, catalog, regions, energy,
                                 since, until))  # fmt: skip
    endpoint_features = await _endpoints(db, endpoints, tenancies, rollups, prices, energy,
                                         since, until, org_ids)  # fmt: skip
    return Analysis(since, until, rules.evaluate(features, endpoint_features, th),
                    len(features), len(endpoint_features), unpriced)  # fmt: skip


def _tenancy(
    t: LiveTenancy,
    gpus: list[GpuRollup],
    priced: tuple[str, dict[str, Decimal]],
    catalog: Mapping[str, inventory.GpuModelFacts],
    regions: Mapping[str, set[str]],
    energy: Mapping[str, tuple[float, float]],
    since: datetime,
    until: datetime,
) -> TenancyFeatures:
    currency, by_model = priced
    pue, grid = energy.get(t.region, (1.0, 0.0))
    return TenancyFeatures(
        tenancy_id=t.id, org_id=t.org_id, name=t.name, kind=t.kind, region=t.region,
        gpu_model=t.gpu_model, gpu_milli=t.gpu_milli, gpus_per_node=t.gpus_per_node,
        node_count=t.node_count, endpoint_id=None, window_start=since, window_end=until,
        hourly_price=by_model[t.gpu_model] * t.gpu_milli / 1000, currency=currency,
        pue=pue, grid_g_per_kwh=grid,
        gpus=tuple(sorted((g.features for g in gpus), key=lambda f: f.gpu_id)),
        alternatives=_alternatives(t, by_model, catalog, regions.get(t.region, set())),
        resizable=t.kind != "bare_metal",
        tdp_watts=catalog[t.gpu_model].tdp_watts if t.gpu_model in catalog else 0,
    )  # fmt: skip


def _alternatives(
    t: LiveTenancy,
    by_model: Mapping[str, Decimal],
    catalog: Mapping[str, inventory.GpuModelFacts],
    models: set[str],
) -> tuple[Alternative, ...]:
    """Every (model, share) the region offers other than the tenancy's own, cheapest first;
    bare metal takes whole cards only."""
    options = []
    for model in sorted(models):
        facts, price = catalog.get(model), by_model.get(model)
        if facts is None or price is None:
            continue
        for milli in _SLICES:
            if milli < 1000 and (not facts.sliceable or t.kind == "bare_metal"):
                continue
            if (model, milli) == (t.gpu_model, t.gpu_milli):
                continue
            options.append(Alternative(
                gpu_model=model, gpu_milli=milli,
                memory_mib=facts.memory_gib * 1024 * milli // 1000,
                hourly_price=price * milli / 1000, tdp_watts=facts.tdp_watts * milli // 1000,
            ))  # fmt: skip
    return tuple(sorted(options, key=lambda a: (a.hourly_price, a.gpu_model, a.gpu_milli)))


async def _endpoints(
    db: AsyncSession,
    endpoints: list[EndpointSize],
    tenancies: list[LiveTenancy],
    rollups: Mapping[str, list[GpuRollup]],
    prices: Mapping[PriceKey, tuple[str, dict[str, Decimal]]],
    energy: Mapping[str, tuple[float, float]],
    since: datetime,
    until: datetime,
    org_ids: Sequence[str] | None,
) -> list[EndpointFeatures]:
    tokens = await endpoint_tokens_by_hour(db, org_ids, since, until)
    replica_gpus: dict[str, list[GpuFeatures]] = defaultdict(list)
    for t in tenancies:
        if t.endpoint_id is not None:
            replica_gpus[t.endpoint_id].extend(g.features for g in rollups.get(t.id, []))
    result = []
    for e in endpoints:
        priced = prices.get((e.org_id, e.region, ""))
        if priced is None or e.gpu_model not in priced[1]:
            continue
        currency, by_model = priced
        start = max(since, e.created_at.replace(minute=0, second=0, microsecond=0))
        hours = max(0, int((until - start) / HOUR))
        series = tokens.get(e.id, {})
        busy = [h for h, n in series.items() if n > 0]
        share = e.gpus_per_replica * e.gpu_milli / 1000
        powers = [g.power_mean_w for g in replica_gpus.get(e.id, [])]
        pue, grid = energy.get(e.region, (1.0, 0.0))
        result.append(EndpointFeatures(
            endpoint_id=e.id, org_id=e.org_id, name=e.name, region=e.region,
            replicas=e.replicas, min_replicas=e.min_replicas, max_replicas=e.max_replicas,
            target_tokens_per_s=e.target_tokens_per_s, hours=hours,
            peak_tokens_per_s=max(series.values(), default=0) / 3600,
            mean_tokens_per_s=sum(series.values()) / (hours * 3600) if hours else 0.0,
            last_token_at=max(busy, default=None), window_start=since, window_end=until,
            replica_hourly_price=by_model[e.gpu_model] * Decimal(str(share)), currency=currency,
            replica_power_w=(sum(powers) / len(powers) * share) if powers else 0.0,
            pue=pue, grid_g_per_kwh=grid,
        ))  # fmt: skip
    return result
