"""Fixtures for the node agent: a fake NVML, a spool, a real ingest server, an agent."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from control_plane.clock import FrozenClock
from control_plane.telemetry.agent.credential import Credential
from control_plane.telemetry.agent.fake_nvml import FakeGpu, FakeNvml, Reading, fake_uuid
from control_plane.telemetry.agent.metrics import AgentMetrics
from control_plane.telemetry.agent.nvml import Sampler
from control_plane.telemetry.agent.run import Agent, AgentConfig
from control_plane.telemetry.agent.shipper import Shipper
from control_plane.telemetry.agent.spool import Spool
from tests.unit.telemetry.ingest_server import IngestServer, running

SECRET = "node-cred-7f3a91c2e5d8b6a4"

MakeAgent = Callable[..., Agent]


class Ticker:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def ingest() -> Iterator[IngestServer]:
    with running(SECRET) as server:
        yield server


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def nvml() -> FakeNvml:
    """Two GPUs whose utilization moves at every pass."""
    gpus = [
        FakeGpu(fake_uuid(i), readings=[Reading(sm_util_pct=10 * k + i) for k in range(5)])
        for i in range(2)
    ]
    return FakeNvml(gpus, auto_advance=True)


@pytest.fixture
def wall() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def make_agent(
    tmp_path: Path, nvml: FakeNvml, wall: FrozenClock, ticker: Ticker
) -> Iterator[MakeAgent]:
    """A fresh agent process, as after a restart: same spool directory, new everything else."""
    made: list[Agent] = []

    def make(
        url: str,
        *,
        max_bytes: int = 64 << 20,
        config: AgentConfig | None = None,
        credential: str = SECRET,
    ) -> Agent:
        agent = Agent(
            Sampler(nvml),
            Spool(tmp_path / "spool", max_bytes),
            Shipper(url, Credential(credential), timeout=5),
            AgentMetrics(),
            config or AgentConfig(interval=10, batch_seconds=60),
            clock=wall,
            monotonic=ticker,
            rng=random.Random(7),
        )
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.shipper.close()


__all__ = ["SECRET", "IngestServer", "MakeAgent", "Ticker"]
