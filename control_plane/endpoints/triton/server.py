"""A real Triton Inference Server process on CPU: the ``tritonserver`` binary bundled in the
``nvidia-pytriton`` wheel, run on an ordinary model repository.

    with TritonServer(repo, work_dir=tmp, load=["tiny-chat"]).start() as triton:
        client = tritonclient.grpc.InferenceServerClient(triton.grpc_url)

The server binds 127.0.0.1 only, runs in its own process group (its Python backend stubs
are its children) and is stopped by that group's id. Its shared-memory regions carry a
prefix of its own, so stopping removes exactly its ``/dev/shm`` files.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Self

from control_plane.endpoints.triton.distribution import (
    assemble_backends,
    find_distribution,
    server_environment,
    unavailable_reason,
)

if TYPE_CHECKING:
    import tritonclient.http as httpclient

SHM_DIR = Path("/dev/shm")  # noqa: S108 - where the Python backend puts its regions
SHM_PREFIX = "triton_python_backend_shm_region_"
LOG_TAIL_BYTES = 8000
EXIT_TIMEOUT_SECONDS = 5  # how long Triton lets in-flight requests finish on SIGTERM
PORT_TAKEN = "already in use"  # what tritonserver logs when a port it was given is bound

__all__ = [
    "TritonPorts",
    "TritonServer",
    "TritonStartError",
    "choose_ports",
    "triton_available",
]


def triton_available() -> str | None:
    """``None`` when the bundled ``tritonserver`` can run here, else the reason."""
    return unavailable_reason()


@dataclass(frozen=True)
class TritonPorts:
    http: int
    grpc: int
    metrics: int


def _below_ephemeral(default: int = 32767) -> int:
    """The highest port below the kernel's ephemeral range (where outgoing connections take
    their local ports, so a port found free there can be taken before Triton binds it)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default
    return max(low - 1, 19999)


def choose_ports(low: int = 18000, high: int | None = None) -> TritonPorts:
    """Three distinct loopback ports in ``[low, high]`` (by default up to the ephemeral
    range) that are free right now."""
    high = high if high is not None else _below_ephemeral()
    chosen: list[int] = []
    for _ in range(500):
        port = low + secrets.randbelow(high - low + 1)
        if port in chosen:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == 3:
            return TritonPorts(http=chosen[0], grpc=chosen[1], metrics=chosen[2])
    raise RuntimeError(f"no three free ports in {low}..{high}")


class TritonStartError(RuntimeError):
    """The server exited or did not become ready in time; the message ends with its log."""


class TritonServer:
    """One ``tritonserver`` process serving ``model_repository``.

    ``explicit`` starts it in explicit model-control mode (models load and unload through
    the repository API) with ``load`` loaded at start; otherwise it loads the whole
    repository. :meth:`start` returns once the server and every model in ``load`` are ready.
    """

    def __init__(
        self,
        model_repository: Path,
        *,
        work_dir: Path,
        ports: TritonPorts | None = None,
        explicit: bool = False,
        load: Sequence[str] = (),
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.work_dir = Path(work_dir).resolve()
        self._chosen_ports = ports is None  # ours to choose again if one is taken
        self.ports = ports or choose_ports()
        self.explicit = explicit
        self.load = tuple(load)
        self.shm_prefix = f"{SHM_PREFIX}{secrets.token_hex(4)}_"
        self.log_path = self.work_dir / f"tritonserver-{self.ports.http}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # --- addresses, as tritonclient wants them (host:port, no scheme) -----------------------

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def logs(self) -> str:
        """The tail of the server's log (stdout and stderr, its stubs' included)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # --- lifecycle --------------------------------------------------------------------------

    def command(self) -> list[str]:
        dist = find_distribution()
        if dist is None:
            raise TritonStartError(str(triton_available()))
        backends = assemble_backends(dist, self.work_dir)
        args = [
            str(dist.binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            "--allow-gpu-metrics=false",
            f"--exit-timeout-secs={EXIT_TIMEOUT_SECONDS}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            "--log-verbose=0",
        ]
        if self.explicit:
            args.append("--model-control-mode=explicit")
            args += [f"--load-model={name}" for name in self.load]
        return args

    def start(self, timeout: float = 60.0, attempts: int = 3) -> Self:
        """Launch the server and wait until it and the models in ``load`` are ready.

        A port found free can still be taken by another process before Triton binds it;
        when that happens to ports chosen here, the start is tried again on new ones."""
        for _ in range(attempts - 1):
            try:
                return self._start_once(timeout)
            except TritonStartError as exc:
                if not self._chosen_ports or PORT_TAKEN not in str(exc):
                    raise
                self.ports = choose_ports()
                self.log_path = self.work_dir / f"tritonserver-{self.ports.http}.log"
        return self._start_once(timeout)

    def _start_once(self, timeout: float) -> Self:
        reason = triton_available()
        if reason is not None:
            raise TritonStartError(reason)
        if self._process is not None:
            raise TritonStartError("this TritonServer was already started")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        command = self.command()
        dist = find_distribution()
        assert dist is not None  # command() checked
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            command,
            env=server_environment(dist),
            cwd=self.work_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        import tritonclient.http as httpclient  # slow to import: only when a server starts

        deadline = time.monotonic() + timeout
        # A short read timeout too: if another process holds the port, the probe reaches
        # it instead of Triton and must not wait the client's default minute for an answer
        # that never comes while Triton has already exited over the taken port.
        client = httpclient.InferenceServerClient(
            self.http_url, connection_timeout=2.0, network_timeout=2.0
        )
        try:
            while True:
                if not self.running():
                    raise TritonStartError(f"tritonserver exited during start:\n{self.logs()}")
                if self._ready(client):
                    return
                if time.monotonic() > deadline:
                    raise TritonStartError(
                        f"tritonserver not ready after {timeout:.0f}s:\n{self.logs()}"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def _ready(self, client: httpclient.InferenceServerClient) -> bool:
        try:
            if not client.is_server_ready():
                return False
            return all(client.is_model_ready(m) for m in self.load)
        except Exception:  # connection refused while it boots
            return False

    def stop(self, timeout: float = EXIT_TIMEOUT_SECONDS + 5.0) -> None:
        """Stop the server's process group (SIGTERM, then SIGKILL) and remove its shm."""
        process, self._process = self._process, None
        if process is not None:
            _stop_group(process, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        for region in SHM_DIR.glob(f"{self.shm_prefix}*"):
            with contextlib.suppress(FileNotFoundError):
                region.unlink()

    def __enter__(self) -> Self:
        if self._process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the process group led by ``process``; SIGKILL what is left after ``timeout``."""
    group = process.pid  # start_new_session: the server leads its own group
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    # The stubs may outlive the server for a moment; nothing of the group may stay.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
