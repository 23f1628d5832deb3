"""Budget requests and responses."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from billing.bounds import bounded

Percent = Annotated[int, Meta(ge=1, le=1000)]


class _In(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies reject fields they do not know."""


class BudgetSet(_In):
    """A monthly (UTC calendar month) limit, before tax, in one currency. ``webhook_url``
    receives a signed POST per threshold crossed; ``email`` a message."""

    currency: Literal["CAD", "SEK", "EUR", "USD"]
    amount: Decimal
    project_id: Annotated[str, Meta(max_length=40)] = ""
    thresholds: Annotated[list[Percent], Meta(min_length=1, max_length=10)] = msgspec.field(
        default_factory=lambda: [50, 80, 100]
    )
    hard_stop: bool = False
    webhook_url: Annotated[str, Meta(max_length=500, pattern=r"^(https?://\S+)?$")] = ""
    email: Annotated[str, Meta(max_length=254, pattern=r"^([^@\s]+@[^@\s]+\.[^@\s]+)?$")] = ""

    def __post_init__(self) -> None:
        bounded(self.amount, "amount", 1_000_000_000, zero_ok=False)


class AlertRead(msgspec.Struct):
    month: str
    threshold: int
    spent: Decimal
    at: datetime


class BudgetRead(msgspec.Struct):
    id: str
    org_id: str
    project_id: str
    currency: str
    amount: Decimal
    thresholds: list[int]
    hard_stop: bool
    webhook_url: str
    email: str
    spent: Decimal
    percent_used: Decimal
    stopped: bool
    evaluated_at: datetime | None
    # Shown once, when the budget (with a webhook) is created or its secret rotated.
    webhook_secret: str | None = None
    alerts: list[AlertRead] = []


class Spend(msgspec.Struct):
    """Month-to-date cost before tax (what budgets compare against)."""

    currency: str
    amount: Decimal
    kind: Literal["gpu", "tokens", "commitment", "other"] = "other"
