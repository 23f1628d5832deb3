"""Request and response bodies of the metering API (batch ingest, usage queries)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from control_plane.http.fields import PRINTABLE

UsageType = Literal["gpu_seconds", "tokens_in", "tokens_out", "cached_tokens"]
Dimension = Literal["region", "gpu_model", "tenancy_kind", "tenancy", "endpoint", "model",
                    "project"]  # fmt: skip
Text = Annotated[str, Meta(min_length=1, max_length=200, pattern=PRINTABLE)]
Id = Annotated[str, Meta(min_length=1, max_length=40, pattern=PRINTABLE)]


class _In(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies reject fields they do not know."""


class EventRef(_In):
    source: Annotated[str, Meta(min_length=1, max_length=80)]
    id: Text


class UsageEventIn(_In):
    """One event from a trusted source. An amendment names the event it corrects and
    carries the signed difference; its type, organization and dimensions are the
    original's (those given here must match or be left out)."""

    id: Text
    source: Annotated[str, Meta(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9._:-]*$")]
    org_id: Id
    value: Annotated[Decimal, Meta(description="amount; may be negative only in an amendment")]
    window_start: datetime
    window_end: datetime
    type: UsageType | None = None
    project_id: Id | None = None
    dimensions: Annotated[
        dict[Annotated[str, Meta(max_length=40, pattern=PRINTABLE)],
             Annotated[str, Meta(max_length=100, pattern=PRINTABLE)]],
        Meta(max_length=16),
    ] = {}  # fmt: skip
    amends: EventRef | None = None

    def __post_init__(self) -> None:
        if not self.value.is_finite() or abs(self.value) >= 10**13:
            raise ValueError("value must be a finite number below 1e13")


class UsageBatch(_In):
    events: Annotated[list[UsageEventIn], Meta(min_length=1, max_length=10_000)]


class IngestResult(msgspec.Struct):
    """What a batch did: stored (amendments among them) and duplicates ignored. A batch
    with any invalid event is refused whole (nothing stored), with each bad field named."""

    accepted: int
    duplicates: int
    amendments: int


class SourceStatRead(msgspec.Struct):
    source: str
    accepted: int
    duplicates: int
    amendments: int
    rejected: int
    last_seen_at: datetime


class UsageRow(msgspec.Struct):
    """One group: its period start, the grouping dimensions' values, the amount."""

    period: datetime
    type: str
    group: dict[str, str]
    value: Decimal
    unit: str


class UsageReport(msgspec.Struct):
    granularity: Literal["hour", "day"]
    since: datetime
    until: datetime
    group_by: list[str]
    rows: list[UsageRow]
