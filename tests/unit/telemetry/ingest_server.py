"""A tiny real HTTP server that speaks the ingest API's batch endpoint, for agent tests.

It checks the bearer credential, remembers batch ids (a repeat is answered as a duplicate,
as the control plane does), records every accepted body, and answers scripted statuses
first when a test asks for them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/api/v1/telemetry/batches"


class IngestServer:
    def __init__(self, credential: str) -> None:
        self.credential = credential
        self.accepted: list[dict[str, Any]] = []  # bodies, in arrival order
        self.scripted: list[int] = []  # statuses to answer before behaving normally
        self.requests = 0
        self.refused_auth = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def accepted_ids(self) -> list[str]:
        return [b["batch_id"] for b in self.accepted]

    def answer(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests += 1
            if headers.get("authorization") != f"Bearer {self.credential}":
                self.refused_auth += 1
                return 401, {"title": "Unauthorized", "detail": "bad node credential"}
            if headers.get("content-type") != "application/json":
                return 415, {"title": "Unsupported Media Type"}
            if self.scripted:
                status = self.scripted.pop(0)
                return status, {"title": "scripted", "detail": f"scripted {status}"}
            if body["batch_id"] in self._seen:
                return 200, {"accepted": 0, "duplicates": 0, "batch_duplicate": True}
            self._seen.add(body["batch_id"])
            self.accepted.append(body)
            n = len(body["samples"])
            return 200, {"accepted": n, "duplicates": 0, "batch_duplicate": False}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != PATH:
                    self._send(404, {"title": "Not Found"})
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._send(*server.answer(json.loads(raw), headers))

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                kind = "application/json" if status < 400 else "application/problem+json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@contextmanager
def running(credential: str) -> Iterator[IngestServer]:
    server = IngestServer(credential)
    server.start()
    try:
        yield server
    finally:
        server.stop()
