"""What the insights pages show, built from the services' reports: headline figures, chart
data (the JSON that /static/js/charts.js and heatmap.js draw) and advice rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from control_plane.insights.schemas import CurrencyWaste, RecommendationRead
from control_plane.telemetry.schemas import RegionFleet, UtilizationReport
from portal.templating import day_label, hour_label

RULE_LABELS = {
    "idle_gpus": "Idle GPUs",
    "empty_lease": "Nothing running",
    "oversized_gpu": "Oversized GPU",
    "underused_multi_gpu": "Underused GPUs",
    "night_idle": "Idle every night",
    "idle_endpoint": "Idle endpoint",
    "over_replicated_endpoint": "Too many replicas",
}
ACTION_LABELS = {
    "release": "Release",
    "resize": "Resize",
    "scale": "Scale",
    "schedule": "Release when idle",
}
EVIDENCE_UNITS = {"_mib": " MiB", "_pct": " %", "_hours": " h", "_w": " W", "_kwh": " kWh"}


def hour_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_labels(since: date, until: date) -> list[date]:
    """Every day of ``[since, until]``."""
    days, at = [], since
    while at <= until:
        days.append(at)
        at += timedelta(days=1)
    return days


def trend_chart(waste: CurrencyWaste, days: Sequence[date]) -> dict[str, Any]:
    """GPU-hours in use and idle per day (stacked: together what was held), money wasted as
    a line on its own axis."""
    by_day = {d.day: d for d in waste.days}
    busy, idle, money = [], [], []
    for day in days:
        found = by_day.get(day.isoformat())
        held = found.gpu_hours if found else 0.0
        idle_hours = found.idle_gpu_hours if found else 0.0
        busy.append(round(max(held - idle_hours, 0.0), 2))
        idle.append(round(idle_hours, 2))
        money.append(float(found.wasted) if found else 0.0)
    return {
        "title": f"GPU-hours held per day: in use and idle, and money wasted ({waste.currency})",
        "category": "Day (UTC)",
        "axis": "GPU-hours",
        "axis2": f"Wasted ({waste.currency})",
        "precision2": 2,
        "labels": [day_label(day) for day in days],
        "series": [
            {"key": "busy", "color": "--chart-busy", "label": "GPU-hours in use",
             "values": busy},
            {"key": "idle", "color": "--chart-idle", "label": "Idle GPU-hours", "values": idle},
            {"key": "wasted", "color": "--chart-wasted", "type": "line", "axis": "y2",
             "label": f"Wasted ({waste.currency})", "values": money},
        ],
    }  # fmt: skip


def heatmap(
    report: UtilizationReport, hours: Sequence[datetime], tenancy_names: Mapping[str, str]
) -> dict[str, Any]:
    """One row per GPU (of a tenancy), one column per hour: mean utilization or null."""
    index = {hour: n for n, hour in enumerate(hours)}
    rows = []
    counts: dict[str, int] = {}
    for series in report.gpus:
        counts[series.tenancy_id] = counts.get(series.tenancy_id, 0) + 1
        values: list[float | None] = [None] * len(hours)
        for point in series.points:
            slot = index.get(hour_start(point.hour))
            if slot is not None:
                values[slot] = round(point.util_mean, 1)
        share = "" if series.share_milli >= 1000 else f" ({series.share_milli / 1000:g} GPU)"
        tenancy = tenancy_names.get(series.tenancy_id, series.tenancy_id or "unallocated")
        rows.append({
            "label": f"{tenancy} · {series.gpu_model.upper()} #{counts[series.tenancy_id]}{share}",
            "gpu": series.gpu_id,
            "tenancy": tenancy,
            "values": values,
        })  # fmt: skip
    return {
        "title": "Mean GPU utilization per hour, last 7 days",
        "hours": [hour_label(hour) for hour in hours],
        "days": [n for n, hour in enumerate(hours) if hour.hour == 0],
        "idle_pct": report.idle_util_pct,
        "rows": rows,
    }


def heatmap_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The heatmap as a table: per GPU, hours reported, mean utilization, quiet hours."""
    table = []
    idle_pct = float(data["idle_pct"])
    for row in data["rows"]:
        seen = [v for v in row["values"] if v is not None]
        table.append({
            "label": row["label"],
            "gpu": row["gpu"],
            "hours": len(seen),
            "mean": round(sum(seen) / len(seen), 1) if seen else 0.0,
            "quiet": sum(1 for v in seen if v < idle_pct),
        })  # fmt: skip
    return table


def confidence_label(confidence: float) -> str:
    word = "High" if confidence >= 0.8 else "Medium" if confidence >= 0.5 else "Low"
    return f"{word} ({confidence * 100:.0f}%)"


def target_href(rec: RecommendationRead) -> str:
    if rec.target_kind == "endpoint":
        return f"/endpoints/{rec.target_name}"
    if rec.target_kind == "tenancy":
        return f"/tenancies/{rec.target_id}"
    return ""


def _evidence_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        value = round(value, 2)
    if isinstance(value, list | tuple):
        return ", ".join(_evidence_value(key, v) for v in value) or "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_evidence_value(k, v)}" for k, v in value.items()) or "—"
    if isinstance(value, int | float | Decimal):
        unit = next((u for end, u in EVIDENCE_UNITS.items() if key.endswith(end)), "")
        return f"{value:,}{unit}"
    return str(value)


def evidence(items: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The rule's measurements as (label, value) pairs people read."""
    return [
        (key.replace("_", " ").capitalize(), _evidence_value(key, value))
        for key, value in items.items()
    ]


def confirm_text(rec: RecommendationRead) -> str:
    """What the Apply button asks before it acts (a release cannot be undone)."""
    what = f"{rec.action.summary or ACTION_LABELS.get(rec.action.kind, 'Apply')}"
    text = f"{what} — {rec.target_name}?"
    if rec.action.kind == "release":
        return f"{text} The tenancy is released and its GPUs go back to the pool; " \
               "this cannot be undone."  # fmt: skip
    return f"{text} The change goes through the normal path, with its checks."


def advice_row(rec: RecommendationRead) -> dict[str, Any]:
    return {
        "rec": rec,
        "rule_label": RULE_LABELS.get(rec.rule, rec.rule.replace("_", " ").capitalize()),
        "action_label": ACTION_LABELS.get(rec.action.kind, rec.action.kind.capitalize()),
        "href": target_href(rec),
        "confidence": confidence_label(rec.confidence),
        "evidence": evidence(rec.evidence),
        "confirm": confirm_text(rec),
        "actionable": rec.state in ("open", "snoozed"),
    }


def fleet_charts(region: RegionFleet) -> dict[str, dict[str, Any]]:
    """Per region: utilization with allocated and reporting GPUs, and power draw."""
    labels = [hour_label(hour_start(p.hour)) for p in region.points]
    utilization = {
        "title": f"{region.region}: utilization and allocated GPUs per hour",
        "category": "Hour (UTC)",
        "axis": "Mean utilization (%)",
        "axis2": "GPUs",
        "stacked": False,
        "labels": labels,
        "series": [
            {"key": "util", "color": "--chart-series-1", "type": "line",
             "label": "Mean utilization (%)", "values": [p.util_mean for p in region.points]},
            {"key": "allocated", "color": "--chart-series-2", "type": "line", "axis": "y2",
             "label": "GPUs allocated", "values": [p.allocated_gpus for p in region.points]},
            {"key": "reporting", "color": "--chart-series-3", "type": "line", "axis": "y2",
             "label": "GPUs reporting", "values": [p.gpus for p in region.points]},
        ],
    }  # fmt: skip
    power = {
        "title": f"{region.region}: power draw at the GPUs per hour",
        "category": "Hour (UTC)",
        "axis": "kW",
        "precision": 2,
        "stacked": False,
        "labels": labels,
        "series": [
            {"key": "power", "color": "--chart-carbon", "type": "line", "label": "Power (kW)",
             "values": [p.power_kw for p in region.points]},
        ],
    }  # fmt: skip
    return {"utilization": utilization, "power": power}
