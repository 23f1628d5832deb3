"""Request and response bodies for price books, contract terms, credits and profiles."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from billing.bounds import bounded
from control_plane.http.fields import PRINTABLE, Name

UsageType = Literal["gpu_seconds", "tokens_in", "tokens_out", "cached_tokens"]
Match = Annotated[str, Meta(max_length=100, description='"" matches any')]
Price = Annotated[Decimal, Meta(description="0 to 1e6")]
Hour = Annotated[int, Meta(ge=0, le=23)]
Currency = Literal["CAD", "SEK", "EUR", "USD"]


class _In(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies reject fields they do not know."""


class RateIn(_In):
    """GPU time is priced per GPU-hour (billed per second), tokens per million."""

    usage_type: UsageType
    unit_price: Price
    gpu_model: Match = ""
    tenancy_kind: Match = ""
    model: Match = ""
    night_unit_price: Price | None = None
    minimum_seconds: Annotated[int, Meta(ge=0, le=86_400)] = 0

    def __post_init__(self) -> None:
        bounded(self.unit_price, "unit_price", 1_000_000)
        bounded(self.night_unit_price, "night_unit_price", 1_000_000)


class PriceBookCreate(_In):
    effective_from: datetime
    rates: Annotated[list[RateIn], Meta(min_length=1, max_length=500)]
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"
    night_start_hour: Hour = 22
    night_end_hour: Hour = 6
    note: Annotated[str, Meta(max_length=500)] = ""


class RateRead(msgspec.Struct):
    usage_type: str
    unit_price: Decimal
    gpu_model: str
    tenancy_kind: str
    model: str
    night_unit_price: Decimal | None
    minimum_seconds: int


class PriceBookRead(msgspec.Struct):
    id: str
    region: str
    currency: str
    version: int
    effective_from: datetime
    timezone: str
    night_start_hour: int
    night_end_hour: int
    note: str
    created_at: datetime
    rates: list[RateRead]


class OverrideCreate(_In):
    region: Annotated[str, Meta(min_length=1, max_length=32)]
    usage_type: UsageType
    starts_at: datetime
    gpu_model: Match = ""
    model: Match = ""
    unit_price: Price | None = None
    discount_percent: Annotated[Decimal, Meta(description="more than 0, up to 100")] | None = None
    ends_at: datetime | None = None

    def __post_init__(self) -> None:
        bounded(self.unit_price, "unit_price", 1_000_000)
        bounded(self.discount_percent, "discount_percent", 100, zero_ok=False)


class OverrideRead(msgspec.Struct):
    id: str
    org_id: str
    region: str
    usage_type: str
    gpu_model: str
    model: str
    unit_price: Decimal | None
    discount_percent: Decimal | None
    starts_at: datetime
    ends_at: datetime | None


class CommitmentCreate(_In):
    region: Annotated[str, Meta(min_length=1, max_length=32)]
    gpu_model: Annotated[str, Meta(min_length=1, max_length=32)]
    gpus: Annotated[Decimal, Meta(description="more than 0, up to 100000")]
    hourly_price: Price
    starts_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        bounded(self.gpus, "gpus", 100_000, zero_ok=False)
        bounded(self.hourly_price, "hourly_price", 1_000_000)


class CommitmentRead(msgspec.Struct):
    id: str
    org_id: str
    region: str
    gpu_model: str
    gpus: Decimal
    hourly_price: Decimal
    starts_at: datetime
    ends_at: datetime


class CreditCreate(_In):
    currency: Currency
    amount: Annotated[Decimal, Meta(description="in major units, more than 0, up to 1e8")]
    reason: Annotated[str, Meta(min_length=1, max_length=200)]
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        bounded(self.amount, "amount", 100_000_000, zero_ok=False)


class CreditRead(msgspec.Struct):
    id: str
    currency: str
    amount: Decimal
    remaining: Decimal
    reason: str
    granted_at: datetime
    expires_at: datetime | None


class ProfileSet(_In):
    legal_name: Name
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")]
    email: Annotated[
        str, Meta(pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$",
                  max_length=254)
    ]  # fmt: skip
    subdivision: Annotated[str, Meta(pattern=r"^([A-Z0-9]{1,3})?$")] = ""
    tax_id: Annotated[str, Meta(max_length=40, pattern=PRINTABLE)] = ""


class ProfileRead(msgspec.Struct):
    legal_name: str
    country: str
    subdivision: str
    tax_id: str
    email: str
    updated_at: datetime
