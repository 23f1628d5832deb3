"""Pure window math of pools: when a weekly window is open, in the pool's time zone.

A window is a set of weekdays, a local start time and a local end time. It opens on each
of its days at ``start``; an ``end`` at or before ``start`` means the next day (20:00-08:00
runs overnight, 00:00-00:00 is a whole day). Times are wall-clock times in the pool's
IANA zone, so a 08:00 start stays 08:00 across daylight-saving changes; a start that falls
in a spring-forward gap is read with the offset before the gap (02:30 becomes 03:30).

Occurrences back to back for the same organization and project are merged: the grantee
holds the pool until the last one ends. No I/O here; the service feeds rows in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
WEEK = 7 * MINUTES_PER_DAY
HORIZON = timedelta(days=8)  # far enough to find the next opening of any weekly window


@dataclass(frozen=True, slots=True)
class Window:
    """A weekly grant: ``days`` are weekday numbers (0 = Monday), times are minutes after
    local midnight."""

    id: str
    org_id: str
    project_id: str | None
    days: frozenset[int]
    start: int
    end: int

    def grants(self, org_id: str, project_id: str | None) -> bool:
        """Whether a tenancy of ``org_id`` (in ``project_id``) may use the window."""
        return self.org_id == org_id and self.project_id in (None, project_id)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One concrete opening of a window, in UTC."""

    window_id: str
    org_id: str
    project_id: str | None
    start: datetime
    end: datetime

    def grants(self, org_id: str, project_id: str | None) -> bool:
        return self.org_id == org_id and self.project_id in (None, project_id)


def zone(name: str) -> ZoneInfo | None:
    """The IANA zone called ``name``, or None when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_hhmm(text: str) -> int:
    """Minutes after midnight of ``HH:MM`` (00:00 to 23:59)."""
    hours, minutes = text.split(":")
    value = int(hours) * 60 + int(minutes)
    if not (0 <= int(hours) < 24 and 0 <= int(minutes) < 60):
        raise ValueError(text)
    return value


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _week_spans(window: Window) -> list[tuple[int, int]]:
    """The window as minute ranges of a local week (Monday 00:00 = 0), wrapping at the end."""
    length = (window.end - window.start) % MINUTES_PER_DAY or MINUTES_PER_DAY
    spans = []
    for day in window.days:
        start = day * MINUTES_PER_DAY + window.start
        end = start + length
        if end <= WEEK:
            spans.append((start, end))
        else:
            spans += [(start, WEEK), (0, end - WEEK)]
    return spans


def overlapping(new: Window, existing: Iterable[Window]) -> Window | None:
    """The first existing window sharing any minute of the week with ``new``."""
    mine = _week_spans(new)
    for other in existing:
        for a_start, a_end in mine:
            if any(a_start < b_end and b_start < a_end for b_start, b_end in _week_spans(other)):
                return other
    return None


def _local(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    at = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)
    return at.astimezone(UTC)


def occurrences(
    windows: Sequence[Window], tz: ZoneInfo, start: datetime, end: datetime
) -> list[Occurrence]:
    """Openings that overlap [start, end), by start, back-to-back ones of one grantee merged
    (not clipped: an opening under way at ``start`` keeps its real start)."""
    found: list[Occurrence] = []
    day = start.astimezone(tz).date() - timedelta(days=1)  # yesterday's overnight window
    last = end.astimezone(tz).date()
    while day <= last:
        for window in windows:
            if day.weekday() not in window.days:
                continue
            next_day = day + timedelta(days=1) if window.end <= window.start else day
            opens = _local(day, window.start, tz)
            closes = _local(next_day, window.end, tz)
            found.append(Occurrence(window.id, window.org_id, window.project_id, opens, closes))
        day += timedelta(days=1)
    merged = _merge(sorted(found, key=lambda o: o.start))
    return [o for o in merged if o.end > start and o.start < end]


def _merge(ordered: list[Occurrence]) -> list[Occurrence]:
    result: list[Occurrence] = []
    for occurrence in ordered:
        previous = result[-1] if result else None
        if (
            previous is not None
            and previous.end == occurrence.start
            and (previous.org_id, previous.project_id) == (occurrence.org_id, occurrence.project_id)
        ):
            result[-1] = replace(previous, end=occurrence.end)
        else:
            result.append(occurrence)
    return result


def active(windows: Sequence[Window], tz: ZoneInfo, at: datetime) -> Occurrence | None:
    """The opening under way at ``at`` (windows of a pool never overlap)."""
    for occurrence in occurrences(windows, tz, at, at + timedelta(seconds=1)):
        if occurrence.start <= at < occurrence.end:
            return occurrence
    return None


def following(windows: Sequence[Window], tz: ZoneInfo, at: datetime) -> Occurrence | None:
    """The opening that starts exactly when the one under way at ``at`` ends, if any."""
    current = active(windows, tz, at)
    if current is None:
        return None
    for occurrence in occurrences(windows, tz, current.end, current.end + timedelta(minutes=1)):
        if occurrence.start == current.end:
            return occurrence
    return None


def placeable_until(occurrence: Occurrence, drain: timedelta) -> datetime:
    """New work may land until the drain period before the end starts."""
    return occurrence.end - drain


def next_opening(
    windows: Sequence[Window],
    tz: ZoneInfo,
    at: datetime,
    org_id: str,
    project_id: str | None,
    drain: timedelta,
) -> datetime | None:
    """When the pool next takes new work of this grantee (``at`` itself if it does now)."""
    for occurrence in occurrences(windows, tz, at, at + HORIZON):
        if not occurrence.grants(org_id, project_id):
            continue
        if placeable_until(occurrence, drain) > max(at, occurrence.start):
            return max(at, occurrence.start)
    return None
