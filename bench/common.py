"""Helpers every benchmark shares: the ``--quick/--json`` CLI, serving an ASGI app with
uvicorn on a loopback port, percentiles, machine facts and the JSON result file."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
VAR_DIR = REPO_ROOT / "var" / "bench"
PORT_RANGE = (18000, 29000)


def parse_args(
    description: str,
    argv: Sequence[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The options every benchmark takes (``--quick``, ``--json FILE``) plus its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="reduced run of the same measurement (< 2 minutes)"
    )
    parser.add_argument("--json", metavar="FILE", type=Path, help="write the results here")
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


def free_port() -> int:
    """A loopback port in the agreed range that nothing listens on right now."""
    rng = random.Random()  # not security-sensitive; spreads helpers over the range
    for _ in range(200):
        port = rng.randint(*PORT_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


class ServerError(RuntimeError):
    """The server under test did not start or never became ready."""


@dataclass(frozen=True)
class Server:
    """A running server: where to reach it and its process id (for profilers)."""

    base_url: str
    pid: int


@contextmanager
def serve_asgi(
    app: str,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/readyz",
    timeout: float = 60.0,
    server_args: Sequence[str] = (),
) -> Iterator[Server]:
    """Serve ``module:attr`` with uvicorn (one process, no access log), wait until
    ``ready_path`` answers 200, and stop the whole process group on exit."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        *server_args,
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base_url + ready_path, timeout)
        yield Server(base_url, process.pid)
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerError(f"server exited with {process.returncode} before {url} answered")
            try:
                response = client.get(url)
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                last_error = type(exc).__name__
            time.sleep(0.1)  # polling a process we do not control; no event to wait on
    raise ServerError(f"{url} not ready after {timeout:.0f} s ({last_error})")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and all its threads (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processes_cpu_seconds() -> dict[int, tuple[int, str, float]]:
    """Every process on the machine (Linux ``/proc``): pid -> (process group, command
    name, user + system CPU seconds of all its threads); empty where /proc is missing."""
    tick, found = os.sysconf("SC_CLK_TCK"), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue  # ended since the listing
        command, _, rest = text.partition(" (")[2].rpartition(")")
        fields = rest.split()
        found[int(entry.name)] = (
            int(fields[2]),
            command,
            (int(fields[11]) + int(fields[12])) / tick,
        )
    return found


def machine_cpu_seconds() -> dict[str, float] | None:
    """The machine's CPU time since boot over all cores (Linux ``/proc/stat``): ``busy``
    (what ran, guests of this VM included), ``steal`` (what the hypervisor gave to other
    guests while this one wanted to run) and ``total``; else None."""
    try:
        line = Path("/proc/stat").read_text().split("\n", 1)[0]
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    ticks = [int(x) for x in line.split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]
    return {"busy": (sum(ticks) - idle - ticks[7]) / tick, "steal": ticks[7] / tick,
            "total": sum(ticks) / tick}  # fmt: skip


class ProfilerError(RuntimeError):
    """py-spy is missing or could not sample the server."""


@contextmanager
def record_profile(pid: int, seconds: int, output: Path) -> Iterator[None]:
    """Sample ``pid`` with py-spy for ``seconds`` while the body runs (collapsed stacks).

    Only samples where a thread holds the GIL count (``--gil``): that is the Python time
    that limits one process, without idle waits on sockets and worker-thread queues.
    """
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise ProfilerError("profiling needs py-spy (pip install py-spy)")
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds)]
    command += ["--rate", "250", "--gil", "--nolineno", "--format", "raw", "--output", str(output)]
    recorder = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        yield
        _, stderr = recorder.communicate(timeout=seconds + 60)
    finally:
        if recorder.poll() is None:
            os.killpg(recorder.pid, signal.SIGKILL)
            recorder.wait()
    if recorder.returncode != 0 or not output.exists():
        raise ProfilerError(f"py-spy failed: {stderr.decode(errors='replace')[-500:]}")


# Which part of the stack a sample's innermost Python frame belongs to (first match wins).
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("sqlalchemy/", "SQLAlchemy"),
    ("greenlet", "SQLAlchemy"),
    ("asyncpg/", "database driver"),
    ("aiosqlite/", "database driver"),
    ("sqlite3/", "database driver"),
    ("msgspec/", "msgspec"),
    ("litestar/", "Litestar"),
    ("anyio/", "anyio (Litestar DI task groups)"),
    ("h11/", "uvicorn + h11"),
    ("uvicorn/", "uvicorn + h11"),
    ("structlog/", "logging + metrics"),
    ("prometheus_client/", "logging + metrics"),
    ("logging/", "logging + metrics"),
    ("control_plane/", "control_plane"),
    ("asyncio/", "asyncio event loop"),
    ("selectors.py", "asyncio event loop"),
    ("contextvars", "asyncio event loop"),
)


def summarize_profile(
    raw_profile: Path, phases: Sequence[tuple[str, Sequence[str]]] = (), top: int = 15
) -> dict[str, Any]:
    """Shares (%) of the sampled time: by component of the innermost frame (they add up to
    100), by phase (inclusive, overlapping), and the top functions by self time."""
    stacks = _read_collapsed(raw_profile)
    total = sum(stacks.values()) or 1
    components: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, n in stacks.items():
        leaf = frames[-1] if frames else "<native>"
        own[leaf] += n
        components[next((c for needle, c in COMPONENTS if needle in leaf), "other")] += n
    inclusive = {
        label: sum(
            n for frames, n in stacks.items() if any(x in f for f in frames for x in needles)
        )
        for label, needles in phases
    }
    return {
        "samples": total,
        "by_component_pct": {c: _pct(n, total) for c, n in components.most_common()},
        "by_phase_pct": {label: _pct(n, total) for label, n in inclusive.items()},
        "top_self_pct": {f: _pct(n, total) for f, n in own.most_common(top)},
    }


def _passes(frames: Sequence[str], needles: Sequence[str]) -> bool:
    return any(needle in frame for frame in frames for needle in needles)


def _pct(part: int, total: int) -> float:
    return round(100 * part / total, 1)


def _read_collapsed(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = tuple(_short(f) for f in stack.split(";") if f and not f.startswith("process "))
        stacks[frames] += int(count)
    return stacks


def _short(frame: str) -> str:
    """``fn (/long/path/site-packages/pkg/mod.py)`` -> ``fn (pkg/mod.py)``."""
    for marker in ("site-packages/", f"{REPO_ROOT}/", "lib/python3.11/"):
        if marker in frame:
            head, _, tail = frame.partition("(")
            return f"{head}({tail.split(marker, 1)[1]}"
    return frame


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: cores, interpreter, OS and how busy the box was."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": load_average(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other processes share these cores)."""
    return [round(x, 2) for x in os.getloadavg()]


def write_json(path: Path | None, data: Mapping[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


async def reset_postgres_schema(url: str) -> None:
    """Drop and recreate the public schema of ``url``: every benchmark database starts empty."""
    from sqlalchemy import text  # the control plane's own stack, imported where it is used

    from control_plane.db.engine import make_engine

    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the result table."""
    print(message, file=sys.stderr, flush=True)
