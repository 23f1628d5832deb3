"""Closed-loop HTTP load: ``wrk`` when installed, else a small asyncio HTTP/1.1 client.

Both keep ``connections`` keep-alive connections busy for ``duration`` seconds (after an
unmeasured warm-up) and report requests/s, p50/p99 latency and non-2xx answers. The same
tool drives the baseline and the app under test, so their ratio is fair even though the
client shares the CPU with the server.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from bench.common import percentile, process_cpu_seconds

Tool = Literal["wrk", "python"]

_WRK_SCRIPT = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    '@@RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,' ..
    '"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    bad, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One measured point."""

    connections: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int
    # CPU the server process spent per measured request (all its threads; not the
    # database server's). Unlike requests/s, it barely moves when other work shares the
    # cores, so it is the steadier number to compare runs by.
    server_cpu_ms: float | None = None

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors

    def summary(self) -> dict[str, float | int]:
        """The fields a result file keeps, rounded for people."""
        data = asdict(self)
        data["rps"] = round(self.rps, 1)
        data["p50_ms"] = round(self.p50_ms, 3)
        data["p99_ms"] = round(self.p99_ms, 3)
        data["duration_s"] = round(self.duration_s, 2)
        if self.server_cpu_ms is not None:
            data["server_cpu_ms"] = round(self.server_cpu_ms, 3)
        return data


def available_tool(preferred: Tool | None = None) -> Tool:
    """``wrk`` if it is on PATH (or asked for), else the Python client."""
    if preferred == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if preferred == "wrk":
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    return "python"


def run_load(
    tool: Tool,
    url: str,
    headers: Mapping[str, str],
    connections: int,
    duration: int,
    warmup: int,
    server_pid: int | None = None,
) -> LoadResult:
    """Warm up (unmeasured), then measure ``duration`` seconds at ``connections``.

    With ``server_pid``, also report the server's CPU time per measured request.
    """
    if tool == "wrk":
        if warmup > 0:
            _wrk(url, headers, connections, warmup)
        cpu_before = process_cpu_seconds(server_pid) if server_pid else None
        result = _wrk(url, headers, connections, duration)
    else:
        probe = _CpuProbe(server_pid)
        result = asyncio.run(_python_load(url, dict(headers), connections, duration, warmup, probe))
        cpu_before = probe.at_start
    cpu_after = process_cpu_seconds(server_pid) if server_pid else None
    if cpu_before is None or cpu_after is None or not result.requests:
        return result
    return replace(result, server_cpu_ms=1000 * (cpu_after - cpu_before) / result.requests)


def _wrk(url: str, headers: Mapping[str, str], connections: int, duration: int) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    try:
        command = [
            "wrk",
            "--threads",
            "1",  # one client thread: the server under test is one Python process
            "--connections",
            str(connections),
            "--duration",
            f"{duration}s",
            "--timeout",
            "10s",
            "--script",
            script.name,
        ]
        for name, value in headers.items():
            command += ["--header", f"{name}: {value}"]
        command.append(url)
        completed = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=duration + 60
        )
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith("@@RESULT ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    raw = json.loads(line.removeprefix("@@RESULT "))
    seconds = raw["duration_us"] / 1e6
    return LoadResult(
        connections=connections,
        requests=raw["requests"],
        duration_s=seconds,
        rps=raw["requests"] / seconds,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        non2xx=raw["non2xx"],
        socket_errors=raw["socket_errors"],
    )


@dataclass
class _CpuProbe:
    """Reads the server's CPU time when the measured window opens."""

    pid: int | None
    at_start: float | None = None

    def read(self) -> None:
        self.at_start = process_cpu_seconds(self.pid) if self.pid else None


@dataclass
class _Tally:
    latencies: list[float]
    non2xx: int = 0
    socket_errors: int = 0
    record: bool = False


async def _python_load(
    url: str,
    headers: dict[str, str],
    connections: int,
    duration: int,
    warmup: int,
    probe: _CpuProbe,
) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    tally = _Tally(latencies=[])
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    loop = asyncio.get_running_loop()
    loop.call_at(loop.time() + warmup, probe.read)
    workers = [
        asyncio.create_task(_connection_loop(host, port, request, measure_from, stop_at, tally))
        for _ in range(connections)
    ]
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - measure_from
    count = len(tally.latencies)
    return LoadResult(
        connections=connections,
        requests=count,
        duration_s=elapsed,
        rps=count / elapsed,
        p50_ms=percentile(tally.latencies, 50) * 1000,
        p99_ms=percentile(tally.latencies, 99) * 1000,
        non2xx=tally.non2xx,
        socket_errors=tally.socket_errors,
    )


async def _connection_loop(
    host: str, port: int, request: bytes, measure_from: float, stop_at: float, tally: _Tally
) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while (now := time.perf_counter()) < stop_at:
        measuring = now >= measure_from
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            sent = time.perf_counter()
            writer.write(request)
            status, keep_alive = await _read_response(reader)
            latency = time.perf_counter() - sent
        except (OSError, asyncio.IncompleteReadError, ValueError):
            if measuring:
                tally.socket_errors += 1
            _close(writer)
            reader = writer = None
            continue
        if measuring:
            tally.latencies.append(latency)
            if not 200 <= status <= 299:
                tally.non2xx += 1
        if not keep_alive:
            _close(writer)
            reader = writer = None
    _close(writer)


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; returns (status, connection stays open)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, fields.get("connection", "").lower() != "close"
