"""The agent loop: sample, batch, spool, ship; stop without losing what is in memory.

Everything runs on one thread. Each pass samples every GPU; every ``batch_seconds`` (or
sooner, at ``batch_max_samples``) the samples in memory become a batch in the spool; then
the spool ships oldest first until the next pass is due. A failed ship keeps the batch and
waits (exponential back-off with jitter, capped) before trying again. On stop, the samples
in memory are spooled before anything else, so a restart loses nothing.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from control_plane.clock import Clock
from control_plane.telemetry.agent.credential import Credential
from control_plane.telemetry.agent.metrics import AgentMetrics
from control_plane.telemetry.agent.shipper import Outcome, Shipper, ShipResult
from control_plane.telemetry.agent.sources import Source
from control_plane.telemetry.agent.spool import Spool, batch_id_of
from control_plane.telemetry.agent.wire import MAX_SAMPLES, Batch, Sample, decode_batch
from control_plane.telemetry.agent.wire import new_batch_id as _new_batch_id

log = structlog.get_logger("control_plane.telemetry.agent")


@dataclass(frozen=True, slots=True)
class AgentConfig:
    interval: float = 10.0  # seconds between sampling passes
    batch_seconds: float = 60.0  # seconds of samples per batch
    batch_max_samples: int = MAX_SAMPLES
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    final_ship_seconds: float = 5.0  # on stop, how long to keep shipping what is spooled


class Agent:
    def __init__(
        self,
        source: Source,
        spool: Spool,
        shipper: Shipper,
        metrics: AgentMetrics,
        config: AgentConfig | None = None,
        *,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.source, self.spool, self.shipper, self.metrics = source, spool, shipper, metrics
        self.config = config or AgentConfig()
        self.clock = clock or Clock()
        self._monotonic = monotonic
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self.buffer: list[Sample] = []
        self.failures = 0  # consecutive failed ships
        self.retry_at = 0.0  # monotonic time before which shipping waits
        self.metrics.spool_bytes.set(spool.total_bytes())

    def sample_once(self) -> int:
        """One pass over the GPUs into memory; a full batch goes to the spool."""
        samples = self.source.sample(self.clock.now())
        self.buffer.extend(samples)
        self.metrics.observe(samples)
        if len(self.buffer) >= self.config.batch_max_samples:
            self.flush()
        return len(samples)

    def flush(self) -> int:
        """Spool the samples in memory as batches of at most ``batch_max_samples``."""
        size = min(self.config.batch_max_samples, MAX_SAMPLES)
        chunks = [self.buffer[i : i + size] for i in range(0, len(self.buffer), size)]
        self.buffer = []
        for chunk in chunks:
            dropped = self.spool.put(Batch(batch_id=_new_batch_id(self.clock.now()), samples=chunk))
            if dropped:
                self.metrics.dropped.inc(len(dropped))
                log.warning(
                    "spool full: oldest batches dropped unsent",
                    dropped=len(dropped),
                    oldest=dropped[0],
                    max_bytes=self.spool.max_bytes,
                )
        self.metrics.spool_bytes.set(self.spool.total_bytes())
        return len(chunks)

    def ship_pending(self, deadline: float | None = None) -> int:
        """Ship spooled batches oldest first until one fails or ``deadline`` passes."""
        if self._monotonic() < self.retry_at:
            return 0
        delivered, queue = 0, self.spool.pending()
        while queue and (deadline is None or self._monotonic() < deadline):
            path = queue.pop(0)
            result = self.shipper.ship(path.read_bytes())
            if not self._settle(path, result):
                break
            delivered += result.outcome in (Outcome.SHIPPED, Outcome.DUPLICATE)
            if result.outcome is Outcome.TOO_LARGE:
                queue = self.spool.pending()  # its halves go first
        self.metrics.spool_bytes.set(self.spool.total_bytes())
        return delivered

    def run(self, stop: threading.Event) -> None:
        """Sample every ``interval`` until ``stop`` is set, then spool what is in memory."""
        cfg = self.config
        log.info("agent started", interval=cfg.interval, spooled=len(self.spool.pending()))
        now = self._monotonic()
        next_pass, batch_due = now, now + cfg.batch_seconds
        self.ship_pending(deadline=now + cfg.interval)  # what an earlier run left, first
        while not stop.is_set():
            try:
                self.sample_once()
            except Exception:  # e.g. the driver went away: keep shipping, try next pass
                log.exception("sampling pass failed")
            now = self._monotonic()
            if now >= batch_due:
                self.flush()
                batch_due = now + cfg.batch_seconds
            next_pass = max(next_pass + cfg.interval, now)  # fell behind: skip, don't burst
            self.ship_pending(deadline=next_pass)
            stop.wait(max(0.0, next_pass - self._monotonic()))
        self.flush()
        self.ship_pending(deadline=self._monotonic() + cfg.final_ship_seconds)
        log.info("agent stopped", spooled=len(self.spool.pending()))

    def _settle(self, path: Path, result: ShipResult) -> bool:
        """Act on one ship result; False when shipping should pause."""
        batch_id = batch_id_of(path)
        match result.outcome:
            case Outcome.SHIPPED | Outcome.DUPLICATE:
                self.spool.remove(path)
                self.metrics.shipped.inc()
                self.metrics.last_ship.set(self.clock.now().timestamp())
                self.failures = 0
                return True
            case Outcome.REJECTED:
                self.spool.reject(path)
                self.metrics.rejected.inc()
                log.error(
                    "batch rejected, set aside",
                    batch_id=batch_id,
                    status=result.status,
                    detail=result.detail,
                    kept_in=str(self.spool.rejected_dir),
                )
                return True
            case Outcome.TOO_LARGE:
                self._split(path)
                return True
            case Outcome.UNAUTHORIZED:
                log.error(
                    "control plane refused the node credential (401): check the credential "
                    "file; batches are kept and retried",
                    endpoint=self.shipper.endpoint,
                )
        self._back_off(result)
        return False

    def _split(self, path: Path) -> None:
        """413: halve the batch in place (same position in the queue); one sample: reject."""
        batch = decode_batch(path.read_bytes())
        if len(batch.samples) <= 1:
            self.spool.reject(path)
            self.metrics.rejected.inc()
            log.error("single-sample batch too large, set aside", batch_id=batch.batch_id)
            return
        half = len(batch.samples) // 2
        halves = [
            Batch(batch_id=f"{batch.batch_id}-{suffix}", samples=part)
            for suffix, part in (("a", batch.samples[:half]), ("b", batch.samples[half:]))
        ]
        self.spool.replace(path, halves)
        log.warning("batch too large, split in two", batch_id=batch.batch_id)

    def _back_off(self, result: ShipResult) -> None:
        cfg = self.config
        self.failures += 1
        self.metrics.failures.labels(result.outcome.value).inc()
        delay = min(cfg.backoff_max, cfg.backoff_base * 2 ** (self.failures - 1))
        delay *= 0.5 + self._rng.random() / 2  # jitter: nodes don't retry in step
        self.retry_at = self._monotonic() + delay
        log.warning(
            "ship failed, batches kept",
            outcome=result.outcome.value,
            status=result.status,
            detail=result.detail,
            retry_in_s=round(delay, 1),
            spooled=len(self.spool.pending()),
        )


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """What ``cpctl agent run`` was asked to do."""

    url: str
    spool_dir: Path
    spool_max_bytes: int
    metrics_port: int
    metrics_host: str
    config: AgentConfig


def run_agent(
    options: AgentOptions, credential: Credential, source: Source, stop: threading.Event
) -> None:
    """Wire the agent's parts together and run until ``stop`` is set."""
    metrics = AgentMetrics()
    spool = Spool(options.spool_dir, options.spool_max_bytes)
    shipper = Shipper(options.url, credential)
    server = None
    try:
        if options.metrics_port:
            server = metrics.serve(options.metrics_port, options.metrics_host)
            log.info("metrics served", port=server.port)
        Agent(source, spool, shipper, metrics, options.config).run(stop)
    finally:
        if server is not None:
            server.close()
        shipper.close()
