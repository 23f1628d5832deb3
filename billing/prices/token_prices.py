"""Token prices as the gateway asks for them on every response: the price book version in
effect now for the region, with the organization's contract, cached for a while so a
request costs a dictionary lookup. Implements the gateway's ``TokenPricer`` port."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.prices.models import ContractOverride
from billing.prices.service import books_for
from billing.rating import MILLION, Override, Rate, Usage, rate_usage
from billing.taxes import TaxRule
from control_plane.clock import Clock

__all__ = ["TokenPrice", "TokenPrices"]

_NO_TAX = TaxRule("before tax", Decimal(0))
_NINE_PLACES = Decimal("0.000000001")


@dataclass(frozen=True, slots=True)
class TokenPrice:
    currency: str
    per_million_in: Decimal
    per_million_out: Decimal

    def cost(self, tokens_in: int, tokens_out: int) -> Decimal:
        """What the tokens cost before tax, to the billionth of the currency unit (the
        invoice sums the period's tokens and rounds once, at the line)."""
        amount = (tokens_in * self.per_million_in + tokens_out * self.per_million_out) / MILLION
        return amount.quantize(_NINE_PLACES)


class TokenPrices:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, ttl: float = 30.0
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[tuple[str, str, str], tuple[float, TokenPrice | None]] = {}

    async def price(self, org_id: str, region: str, model: str) -> TokenPrice | None:
        """None when the region has no price book in effect."""
        key = (org_id, region, model)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        async with self._sessionmaker() as db:
            price = await _price(db, org_id, region, model, self._clock.now())
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), price)
        return price


async def _price(
    db: AsyncSession, org_id: str, region: str, model: str, now: datetime
) -> TokenPrice | None:
    books = [b for b in await books_for(db, [region]) if b.effective_from <= now]
    if not books:
        return None
    book = books[-1]
    rates = [
        Rate(
            usage_type=r.usage_type,
            unit_price=r.unit_price,
            gpu_model=r.gpu_model,
            tenancy_kind=r.tenancy_kind,
            model=r.model,
            region=region,
        )
        for r in book.rates
        if r.usage_type in ("tokens_in", "tokens_out")
    ]
    contract = await db.scalars(
        select(ContractOverride).where(
            ContractOverride.org_id == org_id,
            ContractOverride.region_code == region,
            ContractOverride.starts_at <= now,
        )
    )
    overrides = [
        Override(
            o.region_code, o.usage_type, o.gpu_model, o.model, o.unit_price, o.discount_percent
        )
        for o in contract
        if o.ends_at is None or o.ends_at > now
    ]
    per_million = {}
    for kind in ("tokens_in", "tokens_out"):
        lines = rate_usage(
            [Usage(kind, MILLION, region=region, model=model)],
            rates,
            currency=book.currency,
            tax=_NO_TAX,
            overrides=overrides,
        )
        per_million[kind] = lines[0].unit_price if lines else Decimal(0)
    return TokenPrice(book.currency, per_million["tokens_in"], per_million["tokens_out"])
