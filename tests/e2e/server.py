"""Serve the real app with uvicorn on a loopback port, in a background thread.

    with serve_app(settings) as base_url:
        httpx.get(f"{base_url}/healthz")

The server gets its own app (and database engine) built from ``settings``, so it never
shares pooled connections with the test's event loop. Arrange data through the ``db``
fixture (commit before calling the server); the ``app`` fixture behind it empties the
tables after the test.

The app's structured logs go to the process's standard error: left unconfigured, structlog
prints to whatever ``sys.stdout`` is at that moment, which inside ``CliRunner.invoke``
is the command's captured output.
"""

from __future__ import annotations

import contextlib
import errno
import random
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import structlog
import uvicorn

from control_plane.app import create_app
from control_plane.clock import Clock
from control_plane.settings import Settings

PORT_RANGE = (18000, 29000)
START_TIMEOUT = 30.0


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that says when start-up has finished, well or badly."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.settled = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.settled.set()


def loopback_socket(attempts: int = 20) -> socket.socket:
    """A listening-ready TCP socket bound to 127.0.0.1 on a random port in PORT_RANGE."""
    last: OSError | None = None
    for _ in range(attempts):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", random.randint(*PORT_RANGE)))
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            last = exc
            continue
        return sock
    raise RuntimeError(f"no free loopback port in {PORT_RANGE}") from last


def _logs_to_stderr() -> None:
    if not structlog.is_configured():
        stream = sys.__stderr__ or sys.stderr
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=stream))


@contextlib.contextmanager
def serve_app(settings: Settings, *, clock: Clock | None = None, app: Any = None) -> Iterator[str]:
    """Run ``app`` (default: ``create_app(settings, clock=clock)``) and yield its base URL.

    Start-up completes (lifespan included) before the URL is yielded; on exit the server
    shuts down gracefully and its thread is joined.
    """
    _logs_to_stderr()
    application = app or create_app(settings, clock=clock, configure_logs=False)
    sock = loopback_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        application,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = _ThreadServer(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit on a failed start-up, or a crash
            failure.append(exc)
        finally:
            server.settled.set()

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        if not server.settled.wait(START_TIMEOUT) or not server.started:
            raise RuntimeError(f"test server did not start: {failure or 'timed out'}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT)
        sock.close()
        if thread.is_alive():
            raise RuntimeError("test server did not stop")
