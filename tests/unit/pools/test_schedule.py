"""The pure window math of pools: overnight windows, merging, time zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from control_plane.pools.schedule import (
    Window,
    active,
    following,
    next_opening,
    occurrences,
    overlapping,
    parse_hhmm,
    zone,
)

UTC_ZONE = ZoneInfo("UTC")
TORONTO = ZoneInfo("America/Toronto")
WEEKDAYS = frozenset(range(5))
EVERY_DAY = frozenset(range(7))


def window(start: str, end: str, days: frozenset[int] = EVERY_DAY, org: str = "org_a",
           project: str | None = None, wid: str = "w") -> Window:  # fmt: skip
    return Window(wid, org, project, days, parse_hhmm(start), parse_hhmm(end))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class TestOverlap:
    def test_day_and_night_windows_do_not_overlap(self) -> None:
        day = window("08:00", "20:00", wid="day")
        night = window("20:00", "08:00", org="org_b", wid="night")

        assert overlapping(night, [day]) is None

    def test_an_overnight_window_overlaps_the_next_mornings_window(self) -> None:
        friday_night = window("22:00", "06:00", frozenset({4}), wid="fri")
        saturday_morning = window("05:00", "09:00", frozenset({5}), wid="sat")

        assert overlapping(saturday_morning, [friday_night]) == friday_night

    def test_a_sunday_night_window_wraps_into_monday(self) -> None:
        sunday_night = window("23:00", "02:00", frozenset({6}), wid="sun")
        monday_early = window("01:00", "03:00", frozenset({0}), wid="mon")

        assert overlapping(monday_early, [sunday_night]) == sunday_night

    def test_different_days_do_not_overlap(self) -> None:
        assert overlapping(window("08:00", "20:00", frozenset({0})),
                           [window("08:00", "20:00", frozenset({1}))]) is None  # fmt: skip

    def test_a_whole_day_window_overlaps_anything_that_day(self) -> None:
        whole = window("00:00", "00:00", frozenset({2}))

        assert overlapping(window("12:00", "12:30", frozenset({2})), [whole]) == whole


class TestOccurrences:
    def test_an_overnight_window_ends_the_next_morning(self) -> None:
        night = window("20:00", "08:00", frozenset({0}))  # Monday night

        (occurrence,) = occurrences(
            [night], UTC_ZONE, at("2026-12-07T00:00"), at("2026-12-09T00:00")
        )

        assert (occurrence.start, occurrence.end) == (
            at("2026-12-07T20:00"),
            at("2026-12-08T08:00"),
        )

    def test_back_to_back_windows_of_one_grantee_are_one_opening(self) -> None:
        evening = window("18:00", "00:00", frozenset({0}), wid="eve")
        night = window("00:00", "06:00", frozenset({1}), wid="night")

        found = occurrences(
            [evening, night], UTC_ZONE, at("2026-12-07T00:00"), at("2026-12-08T12:00")
        )

        assert [(o.start, o.end) for o in found] == [
            (at("2026-12-07T18:00"), at("2026-12-08T06:00"))
        ]

    def test_back_to_back_windows_of_two_grantees_stay_apart(self) -> None:
        day = window("08:00", "20:00", WEEKDAYS, org="org_ai", wid="day")
        night = window("20:00", "08:00", WEEKDAYS, org="org_render", wid="night")

        now = at("2026-12-07T12:00")  # a Monday
        current = active([day, night], UTC_ZONE, now)
        after = following([day, night], UTC_ZONE, now)

        assert current is not None
        assert current.org_id == "org_ai"
        assert current.end == at("2026-12-07T20:00")
        assert after is not None
        assert after.org_id == "org_render"
        assert after.end == at("2026-12-08T08:00")

    def test_an_opening_under_way_keeps_its_real_start(self) -> None:
        day = window("08:00", "20:00")

        (first, *_) = occurrences([day], UTC_ZONE, at("2026-12-07T12:00"), at("2026-12-08T12:00"))

        assert first.start == at("2026-12-07T08:00")


class TestTimeZones:
    def test_toronto_working_hours_are_eight_local_in_winter_and_summer(self) -> None:
        day = window("08:00", "20:00", WEEKDAYS)

        winter = active([day], TORONTO, at("2026-01-05T14:00"))  # EST, UTC-5
        summer = active([day], TORONTO, at("2026-07-06T14:00"))  # EDT, UTC-4

        assert winter is not None
        assert winter.start == at("2026-01-05T13:00")
        assert summer is not None
        assert summer.start == at("2026-07-06T12:00")

    def test_the_night_the_clocks_go_forward_is_an_hour_shorter(self) -> None:
        night = window("20:00", "08:00", frozenset({5}))  # Saturday 7 March 2026 -> Sunday

        (o,) = occurrences([night], TORONTO, at("2026-03-07T12:00"), at("2026-03-08T18:00"))

        assert o.start == at("2026-03-08T01:00")  # 20:00 EST
        assert o.end == at("2026-03-08T12:00")  # 08:00 EDT
        assert o.end - o.start == timedelta(hours=11)

    def test_the_night_the_clocks_go_back_is_an_hour_longer(self) -> None:
        night = window("20:00", "08:00", frozenset({5}))  # Saturday 31 October 2026 -> Sunday

        (o,) = occurrences([night], TORONTO, at("2026-10-31T12:00"), at("2026-11-01T18:00"))

        assert o.end - o.start == timedelta(hours=13)

    def test_unknown_zones_are_refused(self) -> None:
        assert zone("America/Toronto") is not None
        assert zone("Mars/Olympus_Mons") is None
        assert zone("../etc/passwd") is None


class TestNextOpening:
    def test_a_grantee_waits_for_its_own_window(self) -> None:
        day = window("08:00", "20:00", org="org_ai", wid="day")
        night = window("20:00", "08:00", org="org_render", wid="night")

        opens = next_opening([day, night], UTC_ZONE, at("2026-12-07T12:00"), "org_render", None,
                             timedelta(minutes=30))  # fmt: skip

        assert opens == at("2026-12-07T20:00")

    def test_the_drain_before_the_end_closes_the_window_to_new_work(self) -> None:
        day = window("08:00", "20:00", frozenset({0}), org="org_ai")

        opens = next_opening([day], UTC_ZONE, at("2026-12-07T19:45"), "org_ai", None,
                             timedelta(minutes=30))  # fmt: skip

        assert opens == at("2026-12-14T08:00")  # next Monday

    @pytest.mark.parametrize(
        ("project", "expected"), [("prj_x", True), ("prj_y", False), (None, False)]
    )
    def test_a_project_window_grants_only_that_project(
        self, project: str | None, expected: bool
    ) -> None:
        grant = window("08:00", "20:00", org="org_ai", project="prj_x")

        assert grant.grants("org_ai", project) is expected
        assert window("08:00", "20:00", org="org_ai").grants("org_ai", project) is True
