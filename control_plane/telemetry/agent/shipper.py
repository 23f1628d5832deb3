"""Sends spooled batches to the control plane and says what became of each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

import httpx

from control_plane.telemetry.agent.credential import Credential
from control_plane.telemetry.agent.wire import AGENT_VERSION

BATCHES_PATH = "/api/v1/telemetry/batches"
_RETRYABLE_4XX = frozenset({408, 429})


class Outcome(StrEnum):
    SHIPPED = "shipped"  # the control plane has it: delete it
    DUPLICATE = "duplicate"  # it had it already (an earlier answer was lost): delete it
    REJECTED = "rejected"  # refused for good (422 and other 4xx): set it aside
    TOO_LARGE = "too_large"  # 413: send it in smaller pieces
    UNAUTHORIZED = "unauthorized"  # 401: keep it, back off, an operator must fix the credential
    RETRY = "retry"  # 5xx, 408, 429, network: keep it and back off


@dataclass(frozen=True, slots=True)
class ShipResult:
    outcome: Outcome
    status: int | None = None  # HTTP status, None when no answer came
    detail: str = ""


class Shipper:
    def __init__(
        self,
        url: str,
        credential: Credential,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + BATCHES_PATH
        self._credential = credential
        self._client = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"cpctl-agent/{AGENT_VERSION}"},
        )

    def close(self) -> None:
        self._client.close()

    def ship(self, body: bytes) -> ShipResult:
        """POST one encoded batch."""
        headers = {
            "Authorization": self._credential.authorization(),
            "Content-Type": "application/json",
        }
        try:
            response = self._client.post(self.endpoint, content=body, headers=headers)
        except httpx.TransportError as exc:
            return ShipResult(Outcome.RETRY, None, f"{type(exc).__name__}: {exc}")
        return _result(response)


def _result(response: httpx.Response) -> ShipResult:
    status = response.status_code
    if 200 <= status < 300:
        duplicate = _json(response).get("batch_duplicate") is True
        return ShipResult(Outcome.DUPLICATE if duplicate else Outcome.SHIPPED, status)
    detail = _detail(response)
    if status == 401:
        return ShipResult(Outcome.UNAUTHORIZED, status, detail)
    if status == 413:
        return ShipResult(Outcome.TOO_LARGE, status, detail)
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        return ShipResult(Outcome.REJECTED, status, detail)
    return ShipResult(Outcome.RETRY, status, detail)


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except json.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _detail(response: httpx.Response) -> str:
    """The problem+json ``detail`` (or title), else the start of the body."""
    body = _json(response)
    for key in ("detail", "title"):
        if isinstance(body.get(key), str):
            return str(body[key])
    return response.text[:200]
