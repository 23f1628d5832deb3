"""Month-to-date cost as a customer reads it: the organization's usage of a month rated
at today's prices, the way the month's invoice will be (before credits), per currency,
summed by kind of charge and by project."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoices.inputs import load_period
from billing.invoices.service import month_bounds, rate_org
from billing.rating import Line, major
from control_plane.identity.authz import TenantScope

__all__ = ["CostBreakdown", "CostItem", "CurrencyCost", "cost_breakdown"]

KIND_LABELS = {
    "gpu_seconds": "GPU time",
    "tokens_in": "Input tokens",
    "tokens_out": "Output tokens",
    "cached_tokens": "Cached input tokens",
    "commitment": "Commitments",
}


class CostItem(msgspec.Struct):
    """One share of a currency's cost: a kind of charge or a project."""

    key: str
    label: str
    amount: Decimal


class CostLine(msgspec.Struct):
    kind: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    tax_rule: str
    project: str


class CurrencyCost(msgspec.Struct):
    currency: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    by_kind: list[CostItem]
    by_project: list[CostItem]
    lines: list[CostLine]


class CostBreakdown(msgspec.Struct):
    month: str
    period_start: datetime
    period_end: datetime
    currencies: list[CurrencyCost]


def _items(sums: dict[str, int], labels: dict[str, str]) -> list[CostItem]:
    ordered = sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))
    return [CostItem(key, labels.get(key, key or "—"), major(minor)) for key, minor in ordered]


def currency_cost(currency: str, lines: list[Line]) -> CurrencyCost:
    """Sums of rated lines (each already rounded to the cent, as on an invoice)."""
    kinds: dict[str, int] = {}
    projects: dict[str, int] = {}
    for line in lines:
        kinds[line.kind] = kinds.get(line.kind, 0) + line.amount_minor
        project = line.dimensions.get("project", "")
        projects[project] = projects.get(project, 0) + line.amount_minor
    subtotal = sum(line.amount_minor for line in lines)
    tax = sum(line.tax_minor for line in lines)
    return CurrencyCost(
        currency=currency,
        subtotal=major(subtotal),
        tax=major(tax),
        total=major(subtotal + tax),
        by_kind=_items(kinds, KIND_LABELS),
        by_project=_items(projects, {"": "No project"}),
        lines=[
            CostLine(
                kind=line.kind,
                description=line.description,
                quantity=line.quantity,
                unit=line.unit,
                unit_price=line.unit_price,
                amount=major(line.amount_minor),
                tax_rule=line.tax_rule,
                project=line.dimensions.get("project", ""),
            )
            for line in sorted(lines, key=lambda ln: -ln.amount_minor)
        ],
    )


async def cost_breakdown(
    db: AsyncSession, scope: TenantScope, org_id: str, month: str
) -> CostBreakdown:
    """``month`` (YYYY-MM) of ``org_id`` rated now; empty currencies when nothing is used."""
    scope.require(org_id)
    start, end = month_bounds(month)
    inputs = await load_period(db, start, end, [org_id])
    currencies = [
        currency_cost(currency, rate_org(inputs, org_id, currency, scope.project_id))
        for currency in inputs.currencies_of(org_id)
    ]
    return CostBreakdown(month=month, period_start=start, period_end=end, currencies=currencies)
