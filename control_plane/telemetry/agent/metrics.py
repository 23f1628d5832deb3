"""The agent's Prometheus metrics, in a registry of its own (``--metrics-port``).

Per GPU (labels ``gpu_uuid``, ``index``): the latest sample, in base units. For the agent:
samples taken, batches shipped, rejected and dropped, ship failures, spool size and the
time of the last successful ship.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from control_plane.telemetry.agent.wire import MIB, Sample

DEFAULT_PORT = 9402
_GPU = ("gpu_uuid", "index")


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sm_util = Gauge("cp_agent_gpu_sm_utilization_percent", "SM busy", _GPU, registry=r)
        self.mem_util = Gauge(
            "cp_agent_gpu_memory_utilization_percent", "Memory bus busy", _GPU, registry=r
        )
        self.mem_used = Gauge("cp_agent_gpu_memory_used_bytes", "Memory used", _GPU, registry=r)
        self.mem_total = Gauge("cp_agent_gpu_memory_total_bytes", "Memory size", _GPU, registry=r)
        self.power = Gauge("cp_agent_gpu_power_watts", "Power draw", _GPU, registry=r)
        self.temp = Gauge("cp_agent_gpu_temperature_celsius", "GPU temperature", _GPU, registry=r)
        self.sm_clock = Gauge("cp_agent_gpu_sm_clock_hertz", "SM clock", _GPU, registry=r)
        self.mem_clock = Gauge("cp_agent_gpu_memory_clock_hertz", "Memory clock", _GPU, registry=r)
        self.ecc = Gauge(
            "cp_agent_gpu_ecc_errors",
            "ECC errors since the driver loaded (volatile); absent without ECC",
            (*_GPU, "type"),
            registry=r,
        )
        self.processes = Gauge(
            "cp_agent_gpu_processes", "Compute processes on the GPU", _GPU, registry=r
        )
        self.samples = Counter("cp_agent_samples", "GPU samples taken", registry=r)
        self.shipped = Counter(
            "cp_agent_batches_shipped", "Batches the control plane has", registry=r
        )
        self.failures = Counter(
            "cp_agent_ship_failures", "Ship attempts that failed", ("reason",), registry=r
        )
        self.dropped = Counter(
            "cp_agent_batches_dropped", "Batches deleted unsent to bound the spool", registry=r
        )
        self.rejected = Counter(
            "cp_agent_batches_rejected", "Batches refused for good (set aside)", registry=r
        )
        self.spool_bytes = Gauge("cp_agent_spool_bytes", "Bytes of batches waiting", registry=r)
        self.last_ship = Gauge(
            "cp_agent_last_ship_timestamp_seconds", "When a batch last shipped", registry=r
        )

    def observe(self, samples: Iterable[Sample]) -> None:
        """Show the latest value of every GPU in ``samples``."""
        count = 0
        for s in samples:
            count += 1
            gpu = (s.gpu_uuid, str(s.index))
            self.sm_util.labels(*gpu).set(s.sm_util_pct)
            self.mem_util.labels(*gpu).set(s.mem_util_pct)
            self.mem_used.labels(*gpu).set(s.mem_used_mib * MIB)
            self.mem_total.labels(*gpu).set(s.mem_total_mib * MIB)
            self.power.labels(*gpu).set(s.power_w)
            self.temp.labels(*gpu).set(s.temp_c)
            self.sm_clock.labels(*gpu).set(s.sm_clock_mhz * 1_000_000)
            self.mem_clock.labels(*gpu).set(s.mem_clock_mhz * 1_000_000)
            self.processes.labels(*gpu).set(len(s.processes))
            for kind, value in (("corrected", s.ecc_corrected), ("uncorrected", s.ecc_uncorrected)):
                if value is not None:
                    self.ecc.labels(*gpu, kind).set(value)
        self.samples.inc(count)

    def serve(self, port: int, host: str) -> MetricsServer:
        """Expose the registry over HTTP; port 0 picks a free one."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        return MetricsServer(server, thread)


class MetricsServer:
    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
