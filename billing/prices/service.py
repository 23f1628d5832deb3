"""Price books, contract overrides, commitments, credit grants and billing profiles.
Services never commit; the request does. Operators write prices; tenants read theirs."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.prices.models import (
    BillingProfile,
    Commitment,
    ContractOverride,
    CreditGrant,
    PriceBook,
    PriceRate,
)
from billing.prices.schemas import (
    CommitmentCreate,
    CommitmentRead,
    CreditCreate,
    CreditRead,
    OverrideCreate,
    OverrideRead,
    PriceBookCreate,
    PriceBookRead,
    ProfileRead,
    ProfileSet,
    RateRead,
)
from billing.rating import major, round_minor
from control_plane.errors import Conflict, FieldError, InvalidInput, NotFound
from control_plane.identity.authz import TenantScope
from control_plane.ids import new_id
from control_plane.inventory.capacity import region_currencies

__all__ = [
    "add_commitment", "add_override", "books_for", "create_book", "get_profile", "grant_credit",
    "list_books", "list_commitments", "list_credits", "list_overrides", "set_profile",
]  # fmt: skip


def _aware(at: datetime, field: str) -> datetime:
    if at.tzinfo is None:
        raise InvalidInput(detail=f"{field} needs a UTC offset.",
                           errors=[FieldError(f"body.{field}", "no UTC offset")])  # fmt: skip
    return at


async def _currency(db: AsyncSession, region: str) -> str:
    currency = (await region_currencies(db)).get(region)
    if currency is None:
        raise NotFound(detail=f"No region {region!r}.")
    return currency


def book_read(book: PriceBook, rates: list[PriceRate]) -> PriceBookRead:
    return PriceBookRead(
        id=book.id, region=book.region_code, currency=book.currency, version=book.version,
        effective_from=book.effective_from, timezone=book.timezone,
        night_start_hour=book.night_start_hour, night_end_hour=book.night_end_hour,
        note=book.note, created_at=book.created_at,
        rates=[RateRead(r.usage_type, r.unit_price, r.gpu_model, r.tenancy_kind, r.model,
                        r.night_unit_price, r.minimum_seconds) for r in rates],
    )  # fmt: skip


async def create_book(
    db: AsyncSession, region: str, data: PriceBookCreate, *, actor: str, now: datetime
) -> PriceBookRead:
    currency = await _currency(db, region)
    effective = _aware(data.effective_from, "effective_from")
    try:
        ZoneInfo(data.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(
            detail=f"{data.timezone!r} is not an IANA time zone.",
            errors=[FieldError("body.timezone", "unknown time zone")],
        ) from exc
    seen = set()
    for n, rate in enumerate(data.rates):
        key = (rate.usage_type, rate.gpu_model, rate.tenancy_kind, rate.model)
        if key in seen:
            raise InvalidInput(
                detail="Two rates match the same usage.",
                errors=[FieldError(f"body.rates[{n}]", "duplicate match")],
            )
        seen.add(key)
    latest = (await db.execute(
        select(func.max(PriceBook.version), func.max(PriceBook.effective_from))
        .where(PriceBook.region_code == region)
    )).one()  # fmt: skip
    if latest[1] is not None and effective <= latest[1]:
        raise Conflict(
            detail=f"Version {latest[0]} takes effect {latest[1].isoformat()}; a new version must "
            "take effect after it (books are never edited).",
            errors=[FieldError("body.effective_from", "not after the latest version")],
        )
    book = PriceBook(
        id=new_id("pb"), region_code=region, currency=currency, version=(latest[0] or 0) + 1,
        effective_from=effective, timezone=data.timezone,
        night_start_hour=data.night_start_hour, night_end_hour=data.night_end_hour,
        note=data.note, created_at=now, created_by=actor,
    )  # fmt: skip
    rates = [
        PriceRate(id=new_id("prt"), book_id=book.id, usage_type=r.usage_type,
                  gpu_model=r.gpu_model, tenancy_kind=r.tenancy_kind, model=r.model,
                  unit_price=r.unit_price, night_unit_price=r.night_unit_price,
                  minimum_seconds=r.minimum_seconds)
        for r in data.rates
    ]  # fmt: skip
    db.add(book)
    await db.flush()
    db.add_all(rates)
    await db.flush()
    return book_read(book, rates)


async def books_for(db: AsyncSession, regions: list[str] | None = None) -> list[PriceBookRead]:
    """Every version of the regions' books (all regions when None), oldest first."""
    query = select(PriceBook).order_by(PriceBook.region_code, PriceBook.version)
    if regions is not None:
        query = query.where(PriceBook.region_code.in_(regions))
    books = list(await db.scalars(query))
    rates: dict[str, list[PriceRate]] = {b.id: [] for b in books}
    if books:
        for rate in await db.scalars(
            select(PriceRate).where(PriceRate.book_id.in_(list(rates))).order_by(PriceRate.id)
        ):
            rates[rate.book_id].append(rate)
    return [book_read(b, rates[b.id]) for b in books]


async def list_books(db: AsyncSession, region: str) -> list[PriceBookRead]:
    await _currency(db, region)
    return await books_for(db, [region])


def override_read(o: ContractOverride) -> OverrideRead:
    return OverrideRead(o.id, o.org_id, o.region_code, o.usage_type, o.gpu_model, o.model,
                        o.unit_price, o.discount_percent, o.starts_at, o.ends_at)  # fmt: skip


async def add_override(
    db: AsyncSession, org_id: str, data: OverrideCreate, now: datetime
) -> OverrideRead:
    await _currency(db, data.region)
    if (data.unit_price is None) == (data.discount_percent is None):
        raise InvalidInput(
            detail="Give either unit_price or discount_percent.",
            errors=[FieldError("body.unit_price", "exactly one of the two")],
        )
    row = ContractOverride(
        id=new_id("cov"), org_id=org_id, region_code=data.region, usage_type=data.usage_type,
        gpu_model=data.gpu_model, model=data.model, unit_price=data.unit_price,
        discount_percent=data.discount_percent, starts_at=_aware(data.starts_at, "starts_at"),
        ends_at=data.ends_at, created_at=now,
    )  # fmt: skip
    db.add(row)
    await db.flush()
    return override_read(row)


async def list_overrides(db: AsyncSession, org_id: str) -> list[OverrideRead]:
    rows = await db.scalars(select(ContractOverride).where(ContractOverride.org_id == org_id)
                            .order_by(ContractOverride.starts_at))  # fmt: skip
    return [override_read(o) for o in rows]


def commitment_read(c: Commitment) -> CommitmentRead:
    return CommitmentRead(c.id, c.org_id, c.region_code, c.gpu_model, c.gpus, c.hourly_price,
                          c.starts_at, c.ends_at)  # fmt: skip


async def add_commitment(
    db: AsyncSession, org_id: str, data: CommitmentCreate, now: datetime
) -> CommitmentRead:
    await _currency(db, data.region)
    if _aware(data.ends_at, "ends_at") <= _aware(data.starts_at, "starts_at"):
        raise InvalidInput(detail="ends_at must be after starts_at.",
                           errors=[FieldError("body.ends_at", "not after starts_at")])  # fmt: skip
    row = Commitment(
        id=new_id("cmt"), org_id=org_id, region_code=data.region, gpu_model=data.gpu_model,
        gpus=data.gpus, hourly_price=data.hourly_price, starts_at=data.starts_at,
        ends_at=data.ends_at, created_at=now,
    )  # fmt: skip
    db.add(row)
    await db.flush()
    return commitment_read(row)


async def list_commitments(db: AsyncSession, org_id: str) -> list[CommitmentRead]:
    rows = await db.scalars(select(Commitment).where(Commitment.org_id == org_id)
                            .order_by(Commitment.starts_at))  # fmt: skip
    return [commitment_read(c) for c in rows]


def credit_read(g: CreditGrant) -> CreditRead:
    return CreditRead(
        g.id,
        g.currency,
        major(g.amount_minor),
        major(g.remaining_minor),
        g.reason,
        g.granted_at,
        g.expires_at,
    )


async def grant_credit(
    db: AsyncSession, org_id: str, data: CreditCreate, now: datetime
) -> CreditRead:
    amount = round_minor(data.amount, data.currency)
    row = CreditGrant(
        id=new_id("cred"), org_id=org_id, currency=data.currency, amount_minor=amount,
        remaining_minor=amount, reason=data.reason, granted_at=now, expires_at=data.expires_at,
    )  # fmt: skip
    db.add(row)
    await db.flush()
    return credit_read(row)


async def list_credits(db: AsyncSession, scope: TenantScope, org_id: str) -> list[CreditRead]:
    scope.require(org_id)
    rows = await db.scalars(select(CreditGrant).where(CreditGrant.org_id == org_id)
                            .order_by(CreditGrant.granted_at))  # fmt: skip
    return [credit_read(g) for g in rows]


def profile_read(p: BillingProfile) -> ProfileRead:
    return ProfileRead(p.legal_name, p.country, p.subdivision, p.tax_id, p.email, p.updated_at)


async def get_profile(db: AsyncSession, scope: TenantScope, org_id: str) -> ProfileRead | None:
    scope.require(org_id)
    row = await db.get(BillingProfile, org_id)
    return profile_read(row) if row else None


async def set_profile(
    db: AsyncSession, scope: TenantScope, org_id: str, data: ProfileSet, now: datetime
) -> ProfileRead:
    scope.require(org_id)
    row = await db.get(BillingProfile, org_id)
    if row is None:
        row = BillingProfile(org_id=org_id)
        db.add(row)
    row.legal_name, row.country, row.subdivision = data.legal_name, data.country, data.subdivision
    row.tax_id, row.email, row.updated_at = data.tax_id, data.email, now
    await db.flush()
    return profile_read(row)
