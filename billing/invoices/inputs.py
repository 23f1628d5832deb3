"""What rating needs for a period, read from the database: usage summed per billable
group (tagged with the price book version and day/night of each hour), the rates of
every book version, overrides, commitments prorated to the period, and the tax rule."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.prices.models import BillingProfile, Commitment, ContractOverride
from billing.prices.schemas import PriceBookRead
from billing.prices.service import books_for
from billing.rating import CommitmentTerm, Override, Rate, Usage
from billing.taxes import TaxRule, tax_rule
from control_plane.inventory.capacity import region_billing_facts
from control_plane.metering.sums import HourClass, period_sums

__all__ = ["PeriodInputs", "load_period"]

HOUR = timedelta(hours=1)


@dataclass
class PeriodInputs:
    """Everything rating reads, for every organization with usage in the period."""

    start: datetime
    end: datetime
    region_currency: dict[str, str]
    region_jurisdiction: dict[str, str]
    rates: list[Rate]
    usage: dict[str, list[Usage]] = field(default_factory=dict)  # org -> groups
    overrides: dict[str, list[Override]] = field(default_factory=dict)
    commitments: dict[str, list[CommitmentTerm]] = field(default_factory=dict)
    profiles: dict[str, BillingProfile] = field(default_factory=dict)

    def currencies_of(self, org_id: str) -> list[str]:
        found = {self.region_currency.get(u.region, "") for u in self.usage.get(org_id, ())}
        found |= {self.region_currency.get(c.region, "") for c in self.commitments.get(org_id, ())}
        return sorted(c for c in found if c)

    def tax_for(self, org_id: str, currency: str) -> TaxRule:
        seller = next((self.region_jurisdiction[r] for r, c in sorted(self.region_currency.items())
                       if c == currency), "")  # fmt: skip
        profile = self.profiles.get(org_id)
        if profile is None:
            return tax_rule(seller, seller)  # no profile yet: taxed as a domestic sale
        return tax_rule(seller, profile.country, profile.subdivision, profile.tax_id)


def hour_classes(
    books: list[PriceBookRead], start: datetime, end: datetime
) -> list[tuple[str, datetime, int, bool]]:
    """(region, hour, book version, night) for every hour of the period in every region
    that has a book; hours before a region's first book get version 0 (unpriced)."""
    rows = []
    by_region: dict[str, list[PriceBookRead]] = {}
    for each in books:
        by_region.setdefault(each.region, []).append(each)
    for region, versions in by_region.items():
        hour = start
        while hour < end:
            book = next((b for b in reversed(versions) if b.effective_from <= hour), None)
            night = False
            if book is not None:
                local = hour.astimezone(ZoneInfo(book.timezone)).hour
                a, b = book.night_start_hour, book.night_end_hour
                night = (a <= local < b) if a < b else (local >= a or local < b) if a > b else False
            rows.append((region, hour, book.version if book else 0, night))
            hour += HOUR
    return rows


async def load_period(
    db: AsyncSession, start: datetime, end: datetime, org_ids: Iterable[str] | None = None
) -> PeriodInputs:
    regions = await region_billing_facts(db)
    books = await books_for(db)
    inputs = PeriodInputs(
        start=start, end=end,
        region_currency={r: c for r, (c, _) in regions.items()},
        region_jurisdiction={r: j for r, (_, j) in regions.items()},
        rates=[Rate(usage_type=r.usage_type, unit_price=r.unit_price, gpu_model=r.gpu_model,
                    tenancy_kind=r.tenancy_kind, model=r.model,
                    night_unit_price=r.night_unit_price, minimum_seconds=r.minimum_seconds,
                    book_version=b.version, region=b.region)
               for b in books for r in b.rates],
    )  # fmt: skip
    orgs = sorted(set(org_ids)) if org_ids is not None else None
    await _load_usage(db, inputs, books, orgs)
    await _load_terms(db, inputs, orgs)
    return inputs


async def _load_usage(
    db: AsyncSession, inputs: PeriodInputs, books: list[PriceBookRead], orgs: list[str] | None
) -> None:
    classes = [HourClass(*c) for c in hour_classes(books, inputs.start, inputs.end)]
    for s in await period_sums(db, inputs.start, inputs.end, classes, orgs):
        inputs.usage.setdefault(s.org_id, []).append(Usage(
            type=s.type, quantity=s.value, region=s.region, project=s.project_id,
            gpu_model=s.gpu_model, tenancy_kind=s.tenancy_kind, tenancy=s.tenancy,
            endpoint=s.endpoint, model=s.model, night=s.night, book_version=s.version,
        ))  # fmt: skip


async def _load_terms(db: AsyncSession, inputs: PeriodInputs, orgs: list[str] | None) -> None:
    start, end = inputs.start, inputs.end
    query = select(ContractOverride).where(
        ContractOverride.starts_at < end,
        (ContractOverride.ends_at.is_(None)) | (ContractOverride.ends_at > start),
    )
    if orgs is not None:
        query = query.where(ContractOverride.org_id.in_(orgs))
    for o in await db.scalars(query.order_by(ContractOverride.created_at)):
        inputs.overrides.setdefault(o.org_id, []).append(
            Override(
                o.region_code, o.usage_type, o.gpu_model, o.model, o.unit_price, o.discount_percent
            )
        )
    terms = select(Commitment).where(Commitment.starts_at < end, Commitment.ends_at > start)
    if orgs is not None:
        terms = terms.where(Commitment.org_id.in_(orgs))
    for c in await db.scalars(terms):
        a, b = max(c.starts_at, start), min(c.ends_at, end)
        inputs.commitments.setdefault(c.org_id, []).append(CommitmentTerm(
            id=c.id, region=c.region_code, gpu_model=c.gpu_model, gpus=c.gpus,
            hourly_price=c.hourly_price, hours=Decimal((b - a).total_seconds()) / 3600,
            label=f"{a:%Y-%m-%d %H:%M} to {b:%Y-%m-%d %H:%M} UTC",
        ))  # fmt: skip
    profiles = select(BillingProfile)
    if orgs is not None:
        profiles = profiles.where(BillingProfile.org_id.in_(orgs))
    inputs.profiles = {p.org_id: p for p in await db.scalars(profiles)}
