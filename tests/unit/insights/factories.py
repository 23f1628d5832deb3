"""Hand-built features for the rules' unit tests: a healthy default, overridden per case."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from control_plane.insights.features import (
    Alternative,
    EndpointFeatures,
    GpuFeatures,
    TenancyFeatures,
)

START = datetime(2025, 3, 3, tzinfo=UTC)
HOURS = 14 * 24
END = START + timedelta(hours=HOURS)
H100_ALTERNATIVES = (
    Alternative("L4", 1000, 24576, Decimal("0.70"), 72),
    Alternative("H100-80GB", 500, 40960, Decimal("2.25"), 350),
    Alternative("A100-80GB", 1000, 81920, Decimal("2.80"), 400),
    Alternative("H100-80GB", 1000, 81920, Decimal("4.50"), 700),  # itself: never picked
)


def hours_ago(hours: float) -> datetime:
    return END - timedelta(hours=hours)


def gpu(i: int = 0, **changes: Any) -> GpuFeatures:
    """A GPU busy most of a 14-day window, day and night, with most of its memory used."""
    base = GpuFeatures(
        gpu_id=f"g{i}",
        hours=HOURS,
        idle_hours=20,
        busy_hours=300,
        util_mean=70.0,
        util_p95_max=98.0,
        busy_util_p95_mean=85.0,
        mem_max_mib=70000,
        mem_total_mib=81920,
        proc_max=1,
        power_mean_w=500.0,
        energy_wh=500.0 * HOURS,
        last_busy_at=hours_ago(2),
        night_hours=126,
        night_idle_hours=10,
        day_hours=210,
        day_busy_hours=190,
    )
    return replace(base, **changes)


def idle_gpu(i: int = 0, **changes: Any) -> GpuFeatures:
    """A GPU whose process still holds memory but has had nothing to do."""
    idle = {
        "idle_hours": HOURS - 5,
        "busy_hours": 0,
        "util_mean": 0.5,
        "util_p95_max": 3.0,
        "busy_util_p95_mean": 0.0,
        "mem_max_mib": 20000,
        "power_mean_w": 80.0,
        "last_busy_at": None,
        "night_idle_hours": 126,
        "day_busy_hours": 0,
    }
    return gpu(i, **(idle | changes))


def tenancy(gpus: tuple[GpuFeatures, ...] | None = None, **changes: Any) -> TenancyFeatures:
    """One H100 VM tenancy, Quebec-like region (PUE 1.2, 30 g CO2e/kWh)."""
    gpus = gpus if gpus is not None else (gpu(),)
    base = TenancyFeatures(
        tenancy_id="t-1",
        org_id="org-1",
        name="train-1",
        kind="vm",
        region="ca-east-1",
        gpu_model="H100-80GB",
        gpu_milli=1000,
        gpus_per_node=len(gpus),
        node_count=1,
        endpoint_id=None,
        window_start=START,
        window_end=END,
        hourly_price=Decimal("4.50"),
        currency="CAD",
        pue=1.2,
        grid_g_per_kwh=30.0,
        gpus=gpus,
        alternatives=H100_ALTERNATIVES,
        tdp_watts=700,
    )
    return replace(base, **changes)


def endpoint(**changes: Any) -> EndpointFeatures:
    """Three fixed replicas of 1,000 tokens/s each, carrying a 1,900 tokens/s peak."""
    base = EndpointFeatures(
        endpoint_id="ep-1",
        org_id="org-1",
        name="chat",
        region="ca-east-1",
        replicas=3,
        min_replicas=3,
        max_replicas=3,
        target_tokens_per_s=1000,
        hours=HOURS,
        peak_tokens_per_s=1900.0,
        mean_tokens_per_s=900.0,
        last_token_at=hours_ago(1),
        window_start=START,
        window_end=END,
        replica_hourly_price=Decimal("1.60"),
        currency="CAD",
        replica_power_w=150.0,
        pue=1.2,
        grid_g_per_kwh=30.0,
    )
    return replace(base, **changes)
