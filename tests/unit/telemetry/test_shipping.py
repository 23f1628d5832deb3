"""Batches travel from the agent to a real HTTP server, and survive when it is away."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import structlog

from control_plane.telemetry.agent.run import Agent, AgentConfig
from control_plane.telemetry.agent.spool import batch_id_of
from control_plane.telemetry.agent.wire import MAX_SAMPLES, decode_batch
from tests.unit.telemetry.conftest import SECRET, MakeAgent, Ticker
from tests.unit.telemetry.ingest_server import IngestServer


def run_for(agent: Agent, seconds: float) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


def spool_batches(agent: Agent, passes: int) -> list[str]:
    """``passes`` sampling passes, each spooled as its own batch; the new batch ids."""
    ids = []
    for _ in range(passes):
        agent.sample_once()
        agent.flush()
        ids.append(batch_id_of(agent.spool.pending()[-1]))
    return ids


def counter(agent: Agent, name: str, **labels: str) -> float:
    return agent.metrics.registry.get_sample_value(name, labels) or 0.0


class TestShipping:
    def test_the_running_agent_batches_samples_and_ships_them_with_its_credential(
        self, make_agent: MakeAgent, ingest: IngestServer
    ) -> None:
        agent = make_agent(ingest.url, config=AgentConfig(interval=0.04, batch_seconds=0.15))
        agent._monotonic = time.monotonic  # real time: the loop really waits

        run_for(agent, 0.7)

        taken = counter(agent, "cp_agent_samples_total")
        shipped = [s for b in ingest.accepted for s in b["samples"]]
        assert ingest.refused_auth == 0
        assert len(ingest.accepted) >= 3  # several batches, not one per pass nor one in all
        assert len(shipped) == taken > len(ingest.accepted) * 2
        assert {s["gpu_uuid"] for s in shipped} == {s["gpu_uuid"] for s in shipped[:2]}
        assert ingest.accepted_ids == sorted(ingest.accepted_ids)
        assert all(b["agent_version"] == "0.1.0" for b in ingest.accepted)
        assert agent.spool.pending() == []

    def test_stopping_spools_the_samples_still_in_memory(
        self, make_agent: MakeAgent, dead_url: str
    ) -> None:
        agent = make_agent(dead_url, config=AgentConfig(interval=0.05, batch_seconds=3600))
        agent._monotonic = time.monotonic

        run_for(agent, 0.4)

        (path,) = agent.spool.pending()
        assert len(decode_batch(path.read_bytes()).samples) == counter(
            agent, "cp_agent_samples_total"
        )

    def test_batches_over_the_api_limit_are_split(
        self, make_agent: MakeAgent, dead_url: str
    ) -> None:
        agent = make_agent(dead_url)
        agent.sample_once()
        agent.buffer = agent.buffer[:1] * 12_000

        agent.flush()

        sizes = [len(decode_batch(p.read_bytes()).samples) for p in agent.spool.pending()]
        assert sizes == [MAX_SAMPLES, MAX_SAMPLES, 2_000]


class TestControlPlaneAway:
    def test_a_restarted_agent_ships_what_the_first_one_spooled_in_order_exactly_once(
        self, make_agent: MakeAgent, dead_url: str, ingest: IngestServer
    ) -> None:
        first = make_agent(dead_url)
        ids = spool_batches(first, 4)
        assert first.ship_pending() == 0  # connection refused
        assert counter(first, "cp_agent_ship_failures_total", reason="retry") == 1

        second = make_agent(ingest.url)  # a new process on the same spool
        second.ship_pending()
        second.ship_pending()

        assert ingest.accepted_ids == ids
        assert ingest.requests == 4
        assert second.spool.pending() == []

    def test_a_503_keeps_the_batch_and_backs_off_before_retrying(
        self, make_agent: MakeAgent, ingest: IngestServer, ticker: Ticker
    ) -> None:
        agent = make_agent(ingest.url)
        ids = spool_batches(agent, 2)
        ingest.scripted = [503]

        agent.ship_pending()
        agent.ship_pending()  # too soon: no request at all
        assert ingest.requests == 1
        assert [batch_id_of(p) for p in agent.spool.pending()] == ids

        ticker.advance(2)  # the first back-off is at most a second
        agent.ship_pending()
        assert ingest.accepted_ids == ids

    def test_back_off_grows_to_its_cap(self, make_agent: MakeAgent, dead_url: str) -> None:
        agent = make_agent(dead_url)
        spool_batches(agent, 1)
        agent._monotonic = lambda: agent.retry_at  # always due
        waits = []
        for _ in range(10):
            start = agent.retry_at
            agent.ship_pending()
            waits.append(agent.retry_at - start)

        assert waits[1] > waits[0]
        assert all(w <= 60 for w in waits)
        assert waits[-1] >= 30  # capped at 60 s, jittered down by at most half


class TestBoundedSpool:
    def test_the_oldest_batches_are_dropped_and_counted_the_newest_kept(
        self, make_agent: MakeAgent, dead_url: str, ingest: IngestServer
    ) -> None:
        probe = make_agent(dead_url)
        spool_batches(probe, 1)
        one = probe.spool.pending()[0].stat().st_size
        probe.spool.remove(probe.spool.pending()[0])
        agent = make_agent(dead_url, max_bytes=int(one * 2.5))

        with structlog.testing.capture_logs() as logs:
            ids = spool_batches(agent, 5)

        assert [batch_id_of(p) for p in agent.spool.pending()] == ids[-2:]
        assert counter(agent, "cp_agent_batches_dropped_total") == 3
        assert any(e["event"].startswith("spool full") for e in logs)
        assert agent.spool.total_bytes() <= one * 2.5
        make_agent(ingest.url).ship_pending()
        assert ingest.accepted_ids == ids[-2:]


class TestAnswers:
    def test_422_sets_the_batch_aside_and_the_next_one_still_ships(
        self, make_agent: MakeAgent, ingest: IngestServer
    ) -> None:
        agent = make_agent(ingest.url)
        bad, good = spool_batches(agent, 2)
        ingest.scripted = [422]

        agent.ship_pending()
        agent.ship_pending()

        assert ingest.accepted_ids == [good]
        assert [batch_id_of(p) for p in agent.spool.rejected()] == [bad]
        assert agent.spool.pending() == []
        assert counter(agent, "cp_agent_batches_rejected_total") == 1
        assert ingest.requests == 2  # the rejected batch is not sent again

    def test_a_batch_the_control_plane_already_has_is_removed(
        self, make_agent: MakeAgent, ingest: IngestServer
    ) -> None:
        agent = make_agent(ingest.url)
        (batch_id,) = spool_batches(agent, 1)
        path = agent.spool.pending()[0]
        body = path.read_bytes()
        agent.ship_pending()
        path.write_bytes(body)  # as if the answer had been lost before the delete

        agent.ship_pending()

        assert ingest.requests == 2
        assert ingest.accepted_ids == [batch_id]
        assert agent.spool.pending() == []
        assert counter(agent, "cp_agent_batches_shipped_total") == 2

    def test_413_splits_the_batch_in_place_and_ships_the_halves_in_order(
        self, make_agent: MakeAgent, ingest: IngestServer
    ) -> None:
        agent = make_agent(ingest.url)
        for _ in range(3):
            agent.sample_once()
        agent.flush()  # one batch of 6 samples
        big = batch_id_of(agent.spool.pending()[0])
        later = spool_batches(agent, 1)
        ingest.scripted = [413]

        agent.ship_pending()

        assert ingest.accepted_ids == [f"{big}-a", f"{big}-b", *later]
        assert [len(b["samples"]) for b in ingest.accepted] == [3, 3, 2]

    def test_401_keeps_batches_logs_loudly_and_never_logs_the_credential(
        self, make_agent: MakeAgent, ingest: IngestServer, tmp_path: Path
    ) -> None:
        wrong = "wrong-" + SECRET
        agent = make_agent(ingest.url, credential=wrong)
        ids = spool_batches(agent, 2)

        with structlog.testing.capture_logs() as logs:
            agent.ship_pending()

        assert ingest.refused_auth == 1
        assert [batch_id_of(p) for p in agent.spool.pending()] == ids
        assert any("401" in e["event"] and e["log_level"] == "error" for e in logs)
        assert SECRET not in repr(logs)
        assert SECRET not in repr(agent.shipper.__dict__)
