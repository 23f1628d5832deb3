"""How the composition root plugs billing in: its routes, the ports it answers for the
control plane (budget stops, invoiced periods), and its background loop."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.budgets.controllers import ROUTES as BUDGET_ROUTES
from billing.budgets.gate import BudgetStops
from billing.budgets.service import evaluate
from billing.costs.controllers import ROUTES as COST_ROUTES
from billing.invoices.controllers import ROUTES as INVOICE_ROUTES
from billing.invoices.models import Invoice
from billing.outbox.controllers import ROUTES as OUTBOX_ROUTES
from billing.prices.controllers import ROUTES as PRICE_ROUTES
from billing.prices.gpu_prices import GpuHourPrices
from billing.prices.token_prices import TokenPrices
from control_plane.clock import Clock
from control_plane.periodic import every
from control_plane.settings import Settings

__all__ = ["ROUTES", "BudgetStops", "GpuHourPrices", "TokenPrices", "budget_loop", "invoiced_until"]

log = structlog.get_logger("billing")
ROUTES: list[Any] = [*PRICE_ROUTES, *INVOICE_ROUTES, *BUDGET_ROUTES, *COST_ROUTES, *OUTBOX_ROUTES]


async def invoiced_until(db: AsyncSession, org_ids: set[str]) -> dict[str, datetime]:
    """Per organization, the end of its last finalized (or paid) invoice period: usage
    before it can no longer be added, only credited."""
    rows = await db.execute(
        select(Invoice.org_id, func.max(Invoice.period_end))
        .where(Invoice.org_id.in_(sorted(org_ids)), Invoice.kind == "invoice",
               Invoice.status.in_(("finalized", "paid")))
        .group_by(Invoice.org_id)
    )  # fmt: skip
    return {org: end for org, end in rows}


async def budget_loop(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    stops: BudgetStops,
) -> None:
    """Evaluate budgets every ``billing_interval_seconds`` until cancelled."""

    async def tick() -> None:
        async with sessionmaker() as db:
            raised = await evaluate(db, clock.now(), settings)
            await db.commit()
        stops.forget()
        if raised:
            log.info("budget alerts raised", alerts=raised)

    await every(settings.billing_interval_seconds, tick, name="budget evaluation")
