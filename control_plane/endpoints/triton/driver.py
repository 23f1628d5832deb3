"""The ``triton-local`` driver: an inference replica is a real Triton server process on
this host, serving the endpoint's model versions (the embedded default, and a single-host
deployment). Built by the tenancies driver registry for kind ``inference``.

Each replica has a directory under ``CP_TRITON_DIR/<tenancy id>``: a model repository
holding one entry per served version (named as the gateway calls it, files linked from the
model store), the server's log, and ``state.json`` (PID and ports), so a control plane that
restarts finds its replicas again instead of starting them twice. Every step is idempotent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from control_plane.endpoints.triton.server import TritonServer, triton_available
from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import (
    Allocation,
    Health,
    Observed,
    PermanentError,
    RetryableError,
    StepResult,
    TenancyKind,
)
from control_plane.tenancies.drivers.registry import DriverContext

__all__ = ["TritonLocalDriver", "build", "stop_all"]

_NAME_LINE = re.compile(r'^\s*name\s*:\s*"[^"]*"\s*$', re.MULTILINE)


def build(context: DriverContext) -> TritonLocalDriver:
    return TritonLocalDriver(context.settings)


def _models(allocation: Allocation) -> list[tuple[str, Path]]:
    return [(m["name"], Path(m["source"])) for m in allocation.workload.get("models", [])]


def link_model(source: Path, target: Path, name: str) -> None:
    """``target`` becomes a Triton model named ``name`` with the files of ``source``
    (linked, not copied: weights can be large), its config renamed."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name == "config.pbtxt":
            config = entry.read_text()
            renamed = f'name: "{name}"'
            text = (
                _NAME_LINE.sub(renamed, config, count=1)
                if _NAME_LINE.search(config)
                else f"{renamed}\n{config}"
            )
            (target / "config.pbtxt").write_text(text)
        else:
            (target / entry.name).symlink_to(entry.resolve())


class TritonLocalDriver:
    name = "triton-local"
    kind = TenancyKind.INFERENCE
    simulated = False

    def __init__(self, settings: Settings) -> None:
        self._root = settings.triton_dir.resolve()
        self._timeout = settings.triton_start_timeout_seconds
        self._servers: dict[str, TritonServer] = {}  # started by this process

    def _dir(self, tenancy_id: str) -> Path:
        return self._root / tenancy_id

    async def validate(self, allocation: Allocation) -> None:
        reason = triton_available()
        if reason is not None:
            raise PermanentError(f"Triton cannot run on this host: {reason}")
        for name, source in _models(allocation):
            if not (source / "config.pbtxt").is_file():
                raise PermanentError(f"model {name}: no Triton model at {source}")

    async def provision(self, allocation: Allocation) -> StepResult:
        return await asyncio.to_thread(self._provision, allocation)

    def _provision(self, allocation: Allocation) -> StepResult:
        state = self._state(allocation.tenancy_id)
        if state is not None and _alive(state["pid"]):
            return StepResult(done=True, detail="Triton already running", facts=_facts(state))
        work = self._dir(allocation.tenancy_id)
        repo = work / "repository"
        repo.mkdir(parents=True, exist_ok=True)
        models = _models(allocation)
        for name, source in models:
            link_model(source, repo / name, name)
        server = TritonServer(repo, work_dir=work, explicit=True, load=[n for n, _ in models])
        try:
            server.start(timeout=self._timeout)
        except Exception as exc:  # the server's own log says why
            server.stop()
            raise RetryableError(f"Triton did not start: {exc}") from exc
        self._servers[allocation.tenancy_id] = server
        state = {
            "pid": server.pid,
            "http": server.http_url,
            "grpc": server.grpc_url,
            "metrics": server.metrics_url,
        }
        (work / "state.json").write_text(json.dumps(state))
        return StepResult(
            done=True,
            detail=f"Triton serving {', '.join(n for n, _ in models)} at {state['grpc']}",
            facts=_facts(state),
        )

    async def describe(self, allocation: Allocation) -> Observed:
        state = self._state(allocation.tenancy_id)
        if state is None or not _alive(state["pid"]):
            return Observed(exists=False, ready=False, detail="no Triton process")
        names = [n for n, _ in _models(allocation)]
        ready = await asyncio.to_thread(_models_ready, state["http"], names)
        return Observed(
            exists=True,
            ready=ready,
            facts=_facts(state),
            detail="ready" if ready else "models loading",
        )

    async def resize(self, allocation: Allocation, previous: Allocation) -> StepResult:
        """Load the versions the replica now serves and unload the others."""
        return await asyncio.to_thread(self._reload, allocation)

    def _reload(self, allocation: Allocation) -> StepResult:
        state = self._state(allocation.tenancy_id)
        if state is None or not _alive(state["pid"]):
            return self._provision(allocation)
        repo = self._dir(allocation.tenancy_id) / "repository"
        wanted = dict(_models(allocation))
        try:
            loaded = _sync_models(state["http"], repo, wanted)
        except Exception as exc:  # the server refused a model: retried with back-off
            raise RetryableError(f"Triton could not load the models: {exc}") from exc
        return StepResult(
            done=True, detail=f"serving {', '.join(loaded) or 'nothing'}", facts=_facts(state)
        )

    async def release(self, allocation: Allocation) -> StepResult:
        await asyncio.to_thread(self._stop, allocation.tenancy_id)
        return StepResult(done=True, detail="Triton stopped")

    def _stop(self, tenancy_id: str) -> None:
        server = self._servers.pop(tenancy_id, None)
        if server is not None:
            server.stop()
            return
        state = self._state(tenancy_id)
        if state is not None and _alive(state["pid"]):
            _kill_group(int(state["pid"]))

    async def clean(self, allocation: Allocation) -> StepResult:
        await asyncio.to_thread(shutil.rmtree, self._dir(allocation.tenancy_id), True)
        return StepResult(done=True, detail="replica directory removed")

    async def health(self) -> Health:
        reason = triton_available()
        return Health(ok=reason is None, detail=reason or "tritonserver available")

    def _state(self, tenancy_id: str) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads((self._dir(tenancy_id) / "state.json").read_text())
        except (OSError, ValueError):
            return None
        return state


def _facts(state: Mapping[str, Any]) -> dict[str, str]:
    return {
        "triton_http": str(state["http"]),
        "triton_grpc": str(state["grpc"]),
        "triton_metrics": str(state["metrics"]),
    }


def _alive(pid: object) -> bool:
    """The PID is a running tritonserver (not a recycled PID of something else)."""
    try:
        cmdline = Path(f"/proc/{int(str(pid))}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"tritonserver" in cmdline


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return


def _models_ready(http_url: str, names: Sequence[str]) -> bool:
    import tritonclient.http as httpclient

    try:
        client = httpclient.InferenceServerClient(http_url, connection_timeout=2.0)
        try:
            return bool(client.is_server_ready()) and all(client.is_model_ready(n) for n in names)
        finally:
            client.close()
    except Exception:  # unreachable or refusing: not ready
        return False


def _sync_models(http_url: str, repo: Path, wanted: Mapping[str, Path]) -> list[str]:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(
        http_url, connection_timeout=5.0, network_timeout=300.0
    )
    try:
        present = {m["name"] for m in client.get_model_repository_index() if m.get("state")}
        for name in sorted(present - set(wanted)):
            client.unload_model(name)
            shutil.rmtree(repo / name, ignore_errors=True)
        for name, source in wanted.items():
            if not client.is_model_ready(name):
                link_model(source, repo / name, name)
                client.load_model(name)
        return sorted(wanted)
    finally:
        client.close()


def stop_all(triton_dir: Path) -> int:
    """Stop every replica server recorded under ``triton_dir`` (tests, benchmarks, an
    operator tidying a host); returns how many were running."""
    stopped = 0
    for state in triton_dir.glob("*/state.json"):
        try:
            pid = int(json.loads(state.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            continue
        if _alive(pid):
            _kill_group(pid)
            stopped += 1
    return stopped
