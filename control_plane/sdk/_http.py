"""The request loop under every SDK call: credentials, retries with backoff, idempotency keys."""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, TypeVar

import httpx
import msgspec

from control_plane import __version__
from control_plane.sdk.errors import (
    ApiConnectionError,
    UnexpectedResponseError,
    error_from_response,
    retry_after_seconds,
)

T = TypeVar("T")

SESSION_COOKIE = "cp_session"
CSRF_HEADER = "X-CSRF-Token"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
# Failures where the request surely never reached the server: safe to retry any method.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_RETRYABLE_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass
class Credentials:
    """How requests authenticate: a project API key, or a signed-in user's session."""

    api_key: str | None = None
    session_token: str | None = None
    csrf_token: str | None = None

    def headers(self) -> dict[str, str]:
        if self.api_key:
            return {"Authorization": f"Bearer {self.api_key}"}
        if self.session_token:
            headers = {"Cookie": f"{SESSION_COOKIE}={self.session_token}"}
            if self.csrf_token:
                headers[CSRF_HEADER] = self.csrf_token
            return headers
        return {}

    def __repr__(self) -> str:  # never show secrets in tracebacks or logs
        kind = "api_key" if self.api_key else "session" if self.session_token else "anonymous"
        return f"Credentials({kind})"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; ``Retry-After`` wins when sent."""

    max_retries: int = 3
    backoff_factor: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, response: httpx.Response | None = None) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``; None means do not retry."""
        if response is not None:
            asked = retry_after_seconds(response)
            if asked is not None:
                return asked if asked <= self.max_retry_after else None
        ceiling = min(self.max_backoff, self.backoff_factor * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


def new_idempotency_key() -> str:
    return f"sdk-{secrets.token_urlsafe(24)}"


class Transport:
    """Sends one logical call, retrying it when that is safe, and decodes the answer."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        timeout: float,
        retry: RetryPolicy,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None],
    ) -> None:
        self.credentials = credentials
        self.retry = retry
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            headers={
                "User-Agent": f"cp-sdk-python/{__version__}",
                "Accept": "application/json, application/problem+json",
            },
            follow_redirects=False,
            # Credentials travel only as the caller configured them, never from a cookie jar.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        into: type[T],
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotency_key: bool = False,
    ) -> T:
        """Send, raise the mapped :class:`ApiError` on a problem, decode into ``into``."""
        response = self.send(
            method, path, params=params, body=body, idempotency_key=idempotency_key
        )
        return decode(response, into)

    def call_no_content(self, method: str, path: str, *, body: Any = None) -> None:
        """Send a request whose success has no body (204); raise on a problem."""
        response = self.send(method, path, body=body)
        if response.status_code >= 400:
            raise error_from_response(response)

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotency_key: bool = False,
    ) -> httpx.Response:
        """One logical request: the same ``Idempotency-Key`` rides on every retry of it."""
        headers = self.credentials.headers()
        content: bytes | None = None
        if body is not None:
            content = msgspec.json.encode(body)
            headers["Content-Type"] = "application/json"
        if idempotency_key and method == "POST":
            headers[IDEMPOTENCY_HEADER] = new_idempotency_key()
        replay_safe = method in _IDEMPOTENT_METHODS or IDEMPOTENCY_HEADER in headers
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, path, params=query, content=content, headers=headers
                )
            except _RETRYABLE_TRANSPORT as exc:
                delay = self._transport_delay(exc, attempt, replay_safe)
                if delay is None:
                    raise ApiConnectionError(
                        f"{method} {path} failed: {type_name(exc)}: {exc}"
                    ) from exc
            else:
                delay = self._response_delay(response, attempt, replay_safe)
                if delay is None:
                    return response
                response.close()
            self._sleep(delay)
            attempt += 1

    def _transport_delay(self, exc: Exception, attempt: int, replay_safe: bool) -> float | None:
        if attempt >= self.retry.max_retries:
            return None
        if not replay_safe and not isinstance(exc, _NOT_SENT):
            return None
        return self.retry.delay(attempt)

    def _response_delay(
        self, response: httpx.Response, attempt: int, replay_safe: bool
    ) -> float | None:
        if attempt >= self.retry.max_retries or not replay_safe:
            return None
        status = response.status_code
        in_progress = (
            status == 409
            and IDEMPOTENCY_HEADER in response.request.headers
            and "retry-after" in response.headers
        )
        if status not in RETRY_STATUSES and not in_progress:
            return None
        return self.retry.delay(attempt, response)


def type_name(exc: BaseException) -> str:
    return type(exc).__name__


def decode(response: httpx.Response, into: type[T]) -> T:
    """Raise for error statuses, else decode the JSON body into ``into``."""
    if response.status_code >= 400:
        raise error_from_response(response)
    try:
        return msgspec.json.decode(response.content, type=into, strict=False)
    except msgspec.DecodeError as exc:
        raise UnexpectedResponseError(
            f"{response.request.method} {response.request.url.path}: unreadable answer: {exc}"
        ) from exc
