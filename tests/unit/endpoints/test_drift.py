"""Drift of prompt/output lengths: the KS statistic and when a shift is flagged."""

from __future__ import annotations

import random

from control_plane.endpoints.drift import drift, ks_statistic
from control_plane.endpoints.gateway.stats import BASELINE, EndpointStats, Stats


class TestKs:
    def test_identical_samples_have_no_gap_and_disjoint_ones_the_whole(self) -> None:
        assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
        assert ks_statistic([1, 2, 3], [10, 11, 12]) == 1.0

    def test_same_distribution_is_not_flagged_a_shifted_one_is(self) -> None:
        rng = random.Random(3)
        base = [rng.gauss(300, 50) for _ in range(500)]
        same = [rng.gauss(300, 50) for _ in range(200)]
        longer = [rng.gauss(600, 50) for _ in range(200)]
        assert not drift(base, same).shifted
        signal = drift(base, longer)
        assert signal.shifted
        assert signal.statistic is not None
        assert signal.statistic > 0.9
        assert signal.recent_median is not None
        assert signal.recent_median > 500

    def test_too_few_samples_give_no_verdict(self) -> None:
        signal = drift([1.0] * 10, [100.0] * 10)
        assert signal.statistic is None
        assert not signal.shifted


class TestEndpointStats:
    def test_baseline_is_the_first_requests_then_the_window_moves(self) -> None:
        stats = Stats()
        for _ in range(BASELINE):
            stats.finished("ep", ok=True, latency_ms=1, ttft_ms=1, tokens_in=100, tokens_out=20)
        figures: EndpointStats = stats.of("ep")
        assert figures.drift()["prompt_tokens"].statistic is None  # no recent window yet
        for _ in range(100):
            stats.finished("ep", ok=True, latency_ms=1, ttft_ms=1, tokens_in=900, tokens_out=20)
        shifted = figures.drift()
        assert shifted["prompt_tokens"].shifted
        assert not shifted["completion_tokens"].shifted
