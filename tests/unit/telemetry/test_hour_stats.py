"""One GPU-hour from its raw samples: mean, nearest-rank p95 and max of utilization and
memory, energy over the part of the hour sampled, ECC errors that appeared in the hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from control_plane.telemetry.rollup import hour_stats

HOUR = datetime(2026, 12, 1, 10, tzinfo=UTC)


def minute(i: int, util: int, mem: int, power: float = 100.0, ecc: int | None = 0) -> tuple:
    return (HOUR + timedelta(minutes=i), util, mem, 81_559, power, 1, ecc)


class TestHourStats:
    def test_p95_is_the_nearest_rank_of_utilization_and_memory(self) -> None:
        rows = [minute(i, util=i + 1, mem=1_000 * (i + 1)) for i in range(60)]

        s = hour_stats(rows)

        # 95 % of 60 samples is the 57th value in order
        assert (s.util_p95, s.util_max, s.util_mean) == (57.0, 60.0, 30.5)
        assert (s.mem_p95_mib, s.mem_max_mib, s.mem_mean_mib) == (57_000, 60_000, 30_500)

    def test_energy_covers_only_the_part_of_the_hour_sampled(self) -> None:
        full = hour_stats([minute(i, 50, 1, power=360.0) for i in range(60)])
        half = hour_stats([minute(i, 50, 1, power=360.0) for i in range(30)])

        assert full.energy_wh == 360.0
        assert half.energy_wh == 180.0

    def test_ecc_errors_are_those_that_appeared_in_the_hour(self) -> None:
        rows = [minute(0, 1, 1, ecc=4), minute(1, 1, 1, ecc=None), minute(2, 1, 1, ecc=7)]

        assert hour_stats(rows).ecc_errors == 3
