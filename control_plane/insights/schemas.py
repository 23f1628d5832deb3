"""Request and response bodies of the insights API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from control_plane.http.fields import PRINTABLE

__all__ = [
    "AnalysisResult",
    "Dismiss",
    "RecommendationRead",
    "Snooze",
    "WasteDayRead",
    "WasteReport",
]


class _In(msgspec.Struct, forbid_unknown_fields=True):
    pass


class Dismiss(_In):
    reason: Annotated[str, Meta(max_length=500, pattern=PRINTABLE)] = ""


class Snooze(_In):
    days: Annotated[int, Meta(ge=1, le=90)] = 7


class ActionRead(msgspec.Struct):
    kind: str  # release, resize, scale, schedule
    params: dict[str, Any]
    summary: str


class RecommendationRead(msgspec.Struct):
    id: str
    org_id: str
    rule: str
    target_kind: str
    target_id: str
    target_name: str
    region: str
    title: str
    action: ActionRead
    monthly_savings: Decimal
    currency: str
    energy_kwh_month: Decimal
    co2e_kg_month: Decimal
    confidence: float
    evidence: dict[str, Any]
    wasted_gpu_hours: float
    state: str  # open, applied, dismissed, snoozed, resolved
    snoozed_until: datetime | None
    note: str
    first_seen_at: datetime
    last_seen_at: datetime
    decided_at: datetime | None
    decided_by: str | None


class WasteDayRead(msgspec.Struct, array_like=True):
    """[day, GPU-hours held, idle GPU-hours, money wasted]"""

    day: str
    gpu_hours: float
    idle_gpu_hours: float
    wasted: Decimal


class CurrencyWaste(msgspec.Struct):
    currency: str
    wasted: Decimal  # idle GPU-hours of the period at the organization's prices
    gpu_hours: float
    idle_gpu_hours: float
    open_savings_per_month: Decimal  # what the open recommendations would save
    days: list[WasteDayRead]


class WasteReport(msgspec.Struct):
    org_id: str
    since: str
    until: str
    open_recommendations: int
    energy_kwh_month: Decimal  # the open recommendations' energy savings
    co2e_kg_month: Decimal
    currencies: list[CurrencyWaste]


class AnalysisResult(msgspec.Struct):
    since: datetime
    until: datetime
    tenancies: int
    endpoints: int
    unpriced: int
    findings: int
    new: int
    updated: int
    reopened: int
    resolved: int
