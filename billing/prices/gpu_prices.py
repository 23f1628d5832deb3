"""GPU-hour prices as waste analysis asks for them: per GPU model, for each organization's
tenancy kind in a region, from the price book in effect with the organization's contract
overrides applied (so "save X" is in the customer's own prices). Implements the insights
domain's ``GpuPricer`` port; one call prices a whole analysis (one query for the books,
one for the contracts)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.prices.models import ContractOverride
from billing.prices.schemas import PriceBookRead
from billing.prices.service import books_for
from billing.rating import Override, Rate, Usage, rate_usage
from billing.taxes import TaxRule
from control_plane.clock import Clock

__all__ = ["GpuHourPrices"]

_NO_TAX = TaxRule("before tax", Decimal(0))
_HOUR = Decimal(3600)
Key = tuple[str, str, str]  # org, region, tenancy kind ("" for any)


class GpuHourPrices:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def __call__(
        self,
        db: AsyncSession,
        wanted: Collection[Key],
        models_by_region: Mapping[str, Collection[str]],
    ) -> dict[Key, tuple[str, dict[str, Decimal]]]:
        """For each (org, region, kind): (currency, price of one whole GPU-hour per model).
        Regions without a book in effect, and models a book does not price, are left out."""
        now = self._clock.now()
        regions = sorted({region for _, region, _ in wanted})
        books: dict[str, PriceBookRead] = {}
        for book in await books_for(db, regions):
            if book.effective_from <= now:
                books[book.region] = book  # versions come oldest first: the last wins
        overrides = await _overrides(db, {org for org, _, _ in wanted}, now)
        result: dict[Key, tuple[str, dict[str, Decimal]]] = {}
        for org, region, kind in wanted:
            effective = books.get(region)
            if effective is not None:
                result[(org, region, kind)] = (effective.currency, _prices(
                    effective, region, kind, models_by_region.get(region, ()),
                    overrides.get((org, region), []),
                ))  # fmt: skip
        return result


def _prices(
    book: PriceBookRead, region: str, kind: str, models: Collection[str], overrides: list[Override]
) -> dict[str, Decimal]:
    rates = [
        Rate(usage_type=r.usage_type, unit_price=r.unit_price, gpu_model=r.gpu_model,
             tenancy_kind=r.tenancy_kind, region=region)
        for r in book.rates
        if r.usage_type == "gpu_seconds"
    ]  # fmt: skip
    prices: dict[str, Decimal] = {}
    for model in sorted(models):
        lines = rate_usage(
            [Usage("gpu_seconds", _HOUR, region=region, gpu_model=model, tenancy_kind=kind)],
            rates, currency=book.currency, tax=_NO_TAX, overrides=overrides,
        )  # fmt: skip
        if lines and lines[0].unit_price > 0:  # 0: the book has no rate for it
            prices[model] = lines[0].unit_price
    return prices


async def _overrides(
    db: AsyncSession, org_ids: set[str], now: datetime
) -> dict[tuple[str, str], list[Override]]:
    contract = await db.scalars(
        select(ContractOverride).where(
            ContractOverride.org_id.in_(sorted(org_ids)), ContractOverride.starts_at <= now
        )
    )
    result: dict[tuple[str, str], list[Override]] = defaultdict(list)
    for o in contract:
        if o.ends_at is None or o.ends_at > now:
            result[(o.org_id, o.region_code)].append(Override(
                o.region_code, o.usage_type, o.gpu_model, o.model, o.unit_price,
                o.discount_percent,
            ))  # fmt: skip
    return result
