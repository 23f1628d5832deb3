"""What the waste rules return: a finding with evidence, an action and its savings."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any


class Rule(StrEnum):
    IDLE_GPUS = "idle_gpus"  # a tenancy's GPUs idle for hours
    EMPTY_LEASE = "empty_lease"  # a tenancy with nothing running on its GPUs at all
    OVERSIZED_GPU = "oversized_gpu"  # a cheaper card or a slice fits its memory and load
    UNDERUSED_MULTI_GPU = "underused_multi_gpu"  # k of n GPUs busy: shrink to k
    NIGHT_IDLE = "night_idle"  # busy by day, idle every night
    IDLE_ENDPOINT = "idle_endpoint"  # no tokens for hours: scale to zero
    OVER_REPLICATED_ENDPOINT = "over_replicated_endpoint"  # fewer replicas carry its peak


class ActionKind(StrEnum):
    RELEASE = "release"  # release the tenancy
    RESIZE = "resize"  # params: gpus_per_node, node_count, gpu_model, gpu_milli
    SCALE = "scale"  # endpoint; params: min_replicas, max_replicas
    SCHEDULE = "schedule"  # params: idle_release_minutes (give the GPUs back when idle)


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    params: dict[str, Any] = field(default_factory=dict)
    summary: str = ""  # "Resize to 2 x L40S"


@dataclass(frozen=True, slots=True)
class Finding:
    rule: Rule
    org_id: str
    target_kind: str  # "tenancy" or "endpoint"
    target_id: str
    target_name: str
    region: str
    title: str  # one line a customer reads: "4 of 8 GPUs idle for 9 days"
    action: Action
    monthly_savings: Decimal  # in currency, rounded half-even to cents
    currency: str
    energy_kwh_month: Decimal  # one decimal
    co2e_kg_month: Decimal  # one decimal
    confidence: float  # 0..1
    evidence: dict[str, Any]  # window and the metrics that decided (JSON-safe values)
    wasted_gpu_hours: float  # GPU-hours of the window the finding calls waste
