"""Invoice documents as the API returns them, and the calls that move them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec
from msgspec import Meta

from billing.bounds import bounded


class _In(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies reject fields they do not know."""


class InvoiceLineRead(msgspec.Struct):
    position: int
    kind: str
    description: str
    dimensions: dict[str, str]
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    tax_rule: str
    tax_rate: Decimal
    tax: Decimal


class InvoiceRead(msgspec.Struct):
    id: str
    org_id: str
    kind: str
    status: str
    number: str | None
    currency: str
    period_start: datetime
    period_end: datetime
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    credits_applied: Decimal
    amount_due: Decimal
    digest: str
    corrects_id: str | None
    reason: str
    customer: dict[str, str]
    created_at: datetime
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    lines: list[InvoiceLineRead] = []


class InvoiceRun(_In):
    """Rate a period into drafts: the calendar month containing ``month`` (YYYY-MM) or an
    explicit [start, end) for an on-demand run; optionally some organizations only."""

    month: Annotated[str, Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] | None = None
    start: datetime | None = None
    end: datetime | None = None
    org_ids: (
        Annotated[list[Annotated[str, Meta(max_length=40)]], Meta(max_length=10_000)] | None
    ) = None


class InvoiceRunResult(msgspec.Struct):
    period_start: datetime
    period_end: datetime
    drafts: int  # created or re-rated
    unchanged: int  # drafts whose lines were already identical
    finalized_kept: int  # finalized invoices of the period, left as they are
    organizations: int


class CreditNoteCreate(_In):
    amount: Annotated[Decimal, Meta(description="before tax, major units, up to 1e8")]
    reason: Annotated[str, Meta(min_length=1, max_length=500)]

    def __post_init__(self) -> None:
        bounded(self.amount, "amount", 100_000_000, zero_ok=False)


class VoidRequest(_In):
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
