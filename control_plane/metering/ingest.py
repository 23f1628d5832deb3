"""Batch ingest from trusted sources: every event checked before any is stored (a batch
is stored whole or not at all), duplicates ignored and counted, late events accepted
within the window, amendments appended against the event they correct."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.hints import hint
from control_plane.errors import FieldError, InvalidInput
from control_plane.identity import organizations
from control_plane.metering.bulk_events import store_new_events
from control_plane.metering.models import UsageEvent
from control_plane.metering.schemas import IngestResult, UsageEventIn
from control_plane.metering.service import NewUsage, count_sources, record_usage

__all__ = ["IngestRules", "ingest"]

MAX_WINDOW = timedelta(days=31)
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class IngestRules:
    late: timedelta  # how far in the past a window may start and still be accepted
    closed_before: dict[str, datetime] | None = None  # org -> usage before this is invoiced


async def ingest(
    db: AsyncSession, events: Sequence[UsageEventIn], rules: IngestRules, now: datetime
) -> IngestResult:
    sources = sorted({e.source for e in events})
    hint(db, target_type="usage_source", target_id=",".join(sources)[:200])
    errors: list[FieldError] = []
    originals = await _originals(db, events)
    known_orgs = await organizations.existing_ids(db, {e.org_id for e in events})
    # New events only, on PostgreSQL: checked here, stored and rolled up in one statement.
    fast = not originals and all(e.amends is None for e in events) and (
        (await db.connection()).dialect.name == "postgresql")  # fmt: skip
    batch: list[NewUsage] = []
    for n, event in enumerate(events):
        where = f"body.events[{n}]"
        problem = _check_window(event, rules, now)
        if problem:
            errors.append(FieldError(f"{where}.window_start", problem))
        if event.org_id not in known_orgs:
            errors.append(FieldError(f"{where}.org_id", "no such organization"))
        if fast:
            errors.extend(_plain_errors(event, where))
            continue
        new, field_errors = _to_usage(event, originals, where)
        errors.extend(field_errors)
        if new is not None:
            batch.append(new)
    errors.extend(await _negative_totals(db, batch, originals))
    if errors:
        await count_sources(db, [], [], now, rejected=_by_source(events))
        raise InvalidInput(
            detail=f"{len(errors)} problem(s) in the batch; nothing was stored.",
            errors=errors[:100],
            commit_anyway=True,  # the rejection counts stay
        )
    if fast:
        stored = await store_new_events(db, events, now)
        return IngestResult(accepted=stored, duplicates=len(events) - stored, amendments=0)
    duplicates = await record_usage(db, batch, now)
    amendments = sum(1 for e in batch if e.amends_id is not None)
    return IngestResult(
        accepted=len(batch) - duplicates, duplicates=duplicates, amendments=amendments
    )


def _by_source(events: Sequence[UsageEventIn]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in events:
        counts[e.source] = counts.get(e.source, 0) + 1
    return counts


def _check_window(event: UsageEventIn, rules: IngestRules, now: datetime) -> str | None:
    start, end = event.window_start, event.window_end
    if start.tzinfo is None or end.tzinfo is None:
        return "times need a UTC offset (e.g. 2026-12-01T10:00:00Z)"
    if end < start:
        return "window_end is before window_start"
    if end - start > MAX_WINDOW:
        return "a window may span at most 31 days"
    if end > now + CLOCK_SKEW:
        return "the window ends in the future"
    if start < now - rules.late:
        hours = int(rules.late.total_seconds() // 3600)
        return f"too late: windows starting more than {hours} h ago are not accepted"
    closed = (rules.closed_before or {}).get(event.org_id)
    if closed is not None and start < closed:
        return "that period is invoiced: corrections go through a credit note"
    return None


def _plain_errors(event: UsageEventIn, where: str) -> list[FieldError]:
    """What :func:`_to_usage` refuses in a new (not amending) event."""
    if event.type is not None and event.value >= 0:
        return []
    errors = []
    if event.type is None:
        errors.append(FieldError(f"{where}.type", "required (except in an amendment)"))
    if event.value < 0:
        errors.append(FieldError(f"{where}.value", "must not be negative"))
    return errors


def _to_usage(
    event: UsageEventIn, originals: dict[tuple[str, str], UsageEvent], where: str
) -> tuple[NewUsage | None, list[FieldError]]:
    if event.amends is None:
        errors = []
        if event.type is None:
            errors.append(FieldError(f"{where}.type", "required (except in an amendment)"))
        if event.value < 0:
            errors.append(FieldError(f"{where}.value", "must not be negative"))
        if errors or event.type is None:
            return None, errors
        return NewUsage(
            source=event.source, event_id=event.id, org_id=event.org_id,
            project_id=event.project_id, type=event.type, value=event.value,
            window_start=event.window_start, window_end=event.window_end,
            dimensions=event.dimensions,
        ), []  # fmt: skip
    original = originals.get((event.amends.source, event.amends.id))
    if original is None:
        return None, [FieldError(f"{where}.amends", "no such event to amend")]
    mismatched = [
        name for name, given, stored in (
            ("org_id", event.org_id, original.org_id),
            ("type", event.type, original.type),
            ("project_id", event.project_id, original.project_id),
        ) if given is not None and given != stored
    ] + ([] if not event.dimensions or event.dimensions == original.dimensions
         else ["dimensions"])  # fmt: skip
    if mismatched:
        return None, [
            FieldError(f"{where}.{name}", "differs from the amended event's") for name in mismatched
        ]
    return NewUsage(
        source=event.source, event_id=event.id, org_id=original.org_id,
        project_id=original.project_id, type=original.type, value=event.value,
        window_start=original.window_start, window_end=original.window_end,
        dimensions=original.dimensions, amends_id=original.id,
    ), []  # fmt: skip


async def _originals(
    db: AsyncSession, events: Sequence[UsageEventIn]
) -> dict[tuple[str, str], UsageEvent]:
    refs = {(e.amends.source, e.amends.id) for e in events if e.amends is not None}
    if not refs:
        return {}
    rows = await db.scalars(
        select(UsageEvent).where(tuple_(UsageEvent.source, UsageEvent.event_id).in_(list(refs)))
    )
    return {(r.source, r.event_id): r for r in rows if r.amends_id is None}


async def _negative_totals(
    db: AsyncSession, batch: Sequence[NewUsage], originals: dict[tuple[str, str], UsageEvent]
) -> list[FieldError]:
    """An amended event's total (original plus every amendment) may not go below zero."""
    deltas: dict[str, Decimal] = {}
    for e in batch:
        if e.amends_id is not None:
            deltas[e.amends_id] = deltas.get(e.amends_id, Decimal(0)) + e.value
    if not deltas:
        return []
    rows = await db.execute(
        select(UsageEvent.amends_id, func.sum(UsageEvent.value))
        .where(UsageEvent.amends_id.in_(list(deltas))).group_by(UsageEvent.amends_id)
    )  # fmt: skip
    stored: dict[str | None, Decimal] = {amends: Decimal(total) for amends, total in rows}
    by_id = {o.id: o for o in originals.values()}
    return [
        FieldError("body.events", f"amendments would take {by_id[i].event_id!r} below zero")
        for i, delta in deltas.items()
        if by_id[i].value + stored.get(i, Decimal(0)) + delta < 0
    ]
