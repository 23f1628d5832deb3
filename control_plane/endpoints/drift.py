"""Drift signals for the MLOps side: has the distribution of prompt (or output) lengths
moved away from the endpoint's baseline? Pure arithmetic: the two-sample
Kolmogorov-Smirnov statistic (the largest gap between the two empirical distribution
functions) between the baseline (the first requests an endpoint served) and the latest
window, flagged above a threshold once both samples are large enough."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

__all__ = ["DriftSignal", "drift", "ks_statistic"]

THRESHOLD = 0.3
MIN_SAMPLES = 50


@dataclass(frozen=True, slots=True)
class DriftSignal:
    statistic: float | None  # None until both samples are large enough
    shifted: bool
    baseline_n: int
    recent_n: int
    baseline_median: float | None
    recent_median: float | None


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """sup |F_a(x) - F_b(x)| over every observed x."""
    xs, ys = sorted(a), sorted(b)
    gap = 0.0
    for x in sorted(set(xs) | set(ys)):
        fa = bisect.bisect_right(xs, x) / len(xs)
        fb = bisect.bisect_right(ys, x) / len(ys)
        gap = max(gap, abs(fa - fb))
    return gap


def drift(
    baseline: Sequence[float],
    recent: Sequence[float],
    *,
    threshold: float = THRESHOLD,
    min_samples: int = MIN_SAMPLES,
) -> DriftSignal:
    enough = len(baseline) >= min_samples and len(recent) >= min_samples
    statistic = round(ks_statistic(baseline, recent), 4) if enough else None
    return DriftSignal(
        statistic=statistic,
        shifted=statistic is not None and statistic > threshold,
        baseline_n=len(baseline),
        recent_n=len(recent),
        baseline_median=median(baseline) if baseline else None,
        recent_median=median(recent) if recent else None,
    )
