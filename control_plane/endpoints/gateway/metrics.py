"""The gateway's per-endpoint figures in Prometheus (``GET /metrics``), read from the
live :class:`~control_plane.endpoints.gateway.stats.Stats` at scrape time: requests,
errors, tokens in and out, requests in flight, and latency and time-to-first-token
quantiles over the latest requests."""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from control_plane.endpoints.gateway.stats import Stats

__all__ = ["watch"]

_LIVE: weakref.WeakSet[Stats] = weakref.WeakSet()
_QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))


def watch(stats: Stats) -> None:
    """Export ``stats`` (one per gateway in this process) until it is garbage."""
    _LIVE.add(stats)


class _GatewayCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "cp_endpoint_requests", "Gateway requests", labels=["endpoint"]
        )
        errors = CounterMetricFamily(
            "cp_endpoint_errors", "Gateway requests that failed", labels=["endpoint"]
        )
        tokens = CounterMetricFamily(
            "cp_endpoint_tokens", "Tokens counted by the gateway", labels=["endpoint", "direction"]
        )
        in_flight = GaugeMetricFamily(
            "cp_endpoint_in_flight", "Requests in flight", labels=["endpoint"]
        )
        latency = GaugeMetricFamily(
            "cp_endpoint_latency_ms", "Request latency quantile", labels=["endpoint", "quantile"]
        )
        ttft = GaugeMetricFamily(
            "cp_endpoint_ttft_ms", "Time to first token quantile", labels=["endpoint", "quantile"]
        )
        for stats in list(_LIVE):
            for endpoint, figures in stats.all().items():
                summary = figures.summary()
                requests.add_metric([endpoint], figures.requests)
                errors.add_metric([endpoint], figures.errors)
                tokens.add_metric([endpoint, "in"], figures.tokens_in)
                tokens.add_metric([endpoint, "out"], figures.tokens_out)
                in_flight.add_metric([endpoint], figures.in_flight)
                for quantile, key in _QUANTILES:
                    for family, name in ((latency, "latency_ms"), (ttft, "ttft_ms")):
                        value = summary[f"{name}_{key}"]
                        if value is not None:
                            family.add_metric([endpoint, quantile], float(value))
        yield from (requests, errors, tokens, in_flight, latency, ttft)


REGISTRY.register(_GatewayCollector())
