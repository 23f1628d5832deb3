"""The agent's Prometheus endpoint, fetched over HTTP as a scraper would."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from control_plane.telemetry.agent.fake_nvml import FakeGpu, FakeNvml, Reading, fake_uuid
from control_plane.telemetry.agent.metrics import AgentMetrics
from control_plane.telemetry.agent.nvml import Sampler
from control_plane.telemetry.agent.run import Agent
from tests.unit.telemetry.conftest import MakeAgent
from tests.unit.telemetry.ingest_server import IngestServer


@pytest.fixture
def served(make_agent: MakeAgent, ingest: IngestServer) -> Iterator[tuple[Agent, str]]:
    agent = make_agent(ingest.url)
    gpus = [
        FakeGpu(
            fake_uuid(0),
            ecc_corrected=4,
            readings=[Reading(37, 12, 1024 << 20, 212_500, 54, 1410, 1593)],
        ),
        FakeGpu(fake_uuid(1), ecc_supported=False),
    ]
    agent.source = Sampler(FakeNvml(gpus))
    server = agent.metrics.serve(0, "127.0.0.1")
    try:
        yield agent, f"http://127.0.0.1:{server.port}/metrics"
    finally:
        server.close()


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url, timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def gpu(index: int, **extra: str) -> frozenset[tuple[str, str]]:
    return frozenset({"gpu_uuid": fake_uuid(index), "index": str(index), **extra}.items())


class TestMetricsEndpoint:
    def test_per_gpu_gauges_in_base_units(self, served: tuple[Agent, str]) -> None:
        agent, url = served
        agent.sample_once()

        got = scrape(url)

        assert got["cp_agent_gpu_sm_utilization_percent", gpu(0)] == 37
        assert got["cp_agent_gpu_memory_used_bytes", gpu(0)] == 1024 << 20
        assert got["cp_agent_gpu_memory_total_bytes", gpu(0)] == 80 << 30
        assert got["cp_agent_gpu_power_watts", gpu(0)] == 212.5
        assert got["cp_agent_gpu_temperature_celsius", gpu(0)] == 54
        assert got["cp_agent_gpu_sm_clock_hertz", gpu(0)] == 1410e6
        assert got["cp_agent_gpu_ecc_errors", gpu(0, type="corrected")] == 4
        assert ("cp_agent_gpu_ecc_errors", gpu(1, type="corrected")) not in got  # no ECC
        assert ("cp_agent_gpu_sm_utilization_percent", gpu(1)) in got

    def test_agent_counters_follow_sampling_and_shipping(
        self, served: tuple[Agent, str], ingest: IngestServer
    ) -> None:
        agent, url = served
        for _ in range(3):
            agent.sample_once()
        agent.flush()
        spooled = scrape(url)["cp_agent_spool_bytes", frozenset()]
        agent.ship_pending()

        got = scrape(url)

        assert got["cp_agent_samples_total", frozenset()] == 6
        assert spooled > 0
        assert got["cp_agent_spool_bytes", frozenset()] == 0
        assert got["cp_agent_batches_shipped_total", frozenset()] == 1
        assert got["cp_agent_batches_dropped_total", frozenset()] == 0
        assert got["cp_agent_last_ship_timestamp_seconds", frozenset()] == (
            agent.clock.now().timestamp()
        )

    def test_the_agent_keeps_out_of_the_global_registry(self) -> None:
        AgentMetrics()

        assert REGISTRY.get_sample_value("cp_agent_samples_total") is None
