"""Per-endpoint request metrics kept by the gateway: requests, errors, latency and time to
first token percentiles (over the latest requests), tokens in and out, tokens per second
over the last minute (the autoscaler's signal) and requests in flight (queue depth)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from control_plane.endpoints.drift import DriftSignal, drift

__all__ = ["EndpointStats", "Stats"]

_SAMPLES = 2048
_RATE_WINDOW = 60.0
BASELINE = 500  # the first requests an endpoint serves set its length baseline
RECENT = 200  # the latest requests compared against it


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class EndpointStats:
    requests: int = 0
    errors: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    in_flight: int = 0
    last_request: float | None = None  # monotonic time of the latest request
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    ttft_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    prompt_baseline: list[int] = field(default_factory=list)
    output_baseline: list[int] = field(default_factory=list)
    prompt_lengths: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT))
    output_lengths: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT))
    recent: deque[tuple[float, int]] = field(default_factory=deque)  # (monotonic, tokens out)

    def tokens_per_second(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self.recent and self.recent[0][0] < now - _RATE_WINDOW:
            self.recent.popleft()
        return sum(t for _, t in self.recent) / _RATE_WINDOW

    def drift(self) -> dict[str, DriftSignal]:
        """Prompt and output lengths of the latest requests against the baseline."""
        return {
            "prompt_tokens": drift(self.prompt_baseline, list(self.prompt_lengths)),
            "completion_tokens": drift(self.output_baseline, list(self.output_lengths)),
        }

    def summary(self) -> dict[str, float | int | None]:
        latency, ttft = list(self.latency_ms), list(self.ttft_ms)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "in_flight": self.in_flight,
            "latency_ms_p50": _quantile(latency, 0.50),
            "latency_ms_p95": _quantile(latency, 0.95),
            "latency_ms_p99": _quantile(latency, 0.99),
            "ttft_ms_p50": _quantile(ttft, 0.50),
            "ttft_ms_p95": _quantile(ttft, 0.95),
            "ttft_ms_p99": _quantile(ttft, 0.99),
            "tokens_per_second": round(self.tokens_per_second(), 3),
        }


class Stats:
    def __init__(self) -> None:
        self._by_endpoint: dict[str, EndpointStats] = {}

    def of(self, endpoint_id: str) -> EndpointStats:
        stats = self._by_endpoint.get(endpoint_id)
        if stats is None:
            stats = self._by_endpoint[endpoint_id] = EndpointStats()
        return stats

    def all(self) -> dict[str, EndpointStats]:
        return dict(self._by_endpoint)

    def finished(
        self,
        endpoint_id: str,
        *,
        ok: bool,
        latency_ms: float,
        ttft_ms: float | None,
        tokens_in: int,
        tokens_out: int,
    ) -> None:
        stats = self.of(endpoint_id)
        stats.requests += 1
        stats.errors += 0 if ok else 1
        stats.tokens_in += tokens_in
        stats.tokens_out += tokens_out
        stats.latency_ms.append(latency_ms)
        if ttft_ms is not None:
            stats.ttft_ms.append(ttft_ms)
        if len(stats.prompt_baseline) < BASELINE:
            stats.prompt_baseline.append(tokens_in)
            stats.output_baseline.append(tokens_out)
        else:
            stats.prompt_lengths.append(tokens_in)
            stats.output_lengths.append(tokens_out)
        stats.recent.append((time.monotonic(), tokens_out))
