"""The gateway's routes served straight from ASGI, in front of Litestar's router.

A gateway call is a data-plane call on a hot path that may add at most 1 ms: Litestar's
routing, guard, signature model, dependency injection and response objects cost about
0.1 ms of CPU per call (a quarter of the gateway's own per-call CPU, measured in-process;
see docs/benchmarks.md). So :class:`GatewayFront` hands every request for a gateway route
(``handlers.ROUTES``) to :class:`GatewayEndpoint`, and every other request to the
Litestar app unchanged.

What Litestar does for a route, the endpoint does with the same code: the access check
(:func:`~control_plane.identity.authz.authorize`, API key or session cookie with its CSRF
token), the body size limit, the body decoded into the same types with the same field
errors (:func:`~control_plane.http.problems.decode_body`), problem+json answers
(:func:`~control_plane.http.problems.problem_document`). The composition root wraps it in
the middleware the Litestar routes have (request ids, access log and HTTP metrics,
security headers, ``Idempotency-Key``); the failed-request audit is left out: it records
nothing for data-plane routes, which are metered as usage instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from control_plane.endpoints.gateway.core import Gateway
from control_plane.errors import (
    PROBLEM_JSON,
    Forbidden,
    MethodNotAllowed,
    PayloadTooLarge,
    ProblemError,
)
from control_plane.http.problems import problem_document, unexpected
from control_plane.identity.authz import Access, TenantScope, authorize

__all__ = ["Answer", "EventStream", "Exchange", "GatewayEndpoint", "GatewayFront", "Route"]

log = structlog.get_logger("control_plane.endpoints.gateway")

_ROUTE = "gateway.route"  # the scope state key the front leaves the matched route under
_JSON = b"application/json"


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole JSON answer (a value, or its encoding as bytes) and its headers."""

    content: Any
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventStream:
    """An answer sent as it is generated (server-sent events)."""

    events: AsyncGenerator[bytes, None]
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[["Exchange"], Awaitable[Answer | EventStream]]


@dataclass(frozen=True, slots=True)
class Route:
    """A gateway route. Its access policy is required, as every Litestar route's is (the
    app refuses to start with one missing)."""

    method: str
    template: str  # Litestar's syntax: ``/v2/models/{name:str}/infer``
    access: Access
    handler: Handler

    @property
    def name(self) -> str:
        """The template as Litestar names it in ``path_template`` (logs, metric labels)."""
        return re.sub(r"\{(\w+):\w+\}", r"{\1}", self.template)

    def pattern(self) -> str:
        return re.sub(r"\{(\w+):\w+\}", r"(?P<\1>[^/]+)", self.template)


@dataclass(frozen=True, slots=True)
class _Path:
    """One route path and the routes on it, by method."""

    name: str
    by_method: Mapping[str, Route]


class Exchange:
    """One request on a gateway route, as its handler sees it."""

    __slots__ = (
        "_body",
        "gateway",
        "max_body",
        "params",
        "receive",
        "scope",
        "send",
        "tenant_scope",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        gateway: Gateway,
        params: dict[str, str],
        max_body: int,
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.gateway = gateway
        self.params = params
        self.max_body = max_body
        self.tenant_scope: TenantScope | None = None
        self._body: bytes | None = None

    @property
    def request_id(self) -> str:
        return str(self.scope.get("state", {}).get("request_id", ""))

    @property
    def tenant(self) -> TenantScope:
        if self.tenant_scope is None:
            raise Forbidden(detail="This route is not a tenant route.")
        return self.tenant_scope

    def header(self, name: bytes) -> str | None:
        """A request header's value (``name`` in lower case, as ASGI gives them)."""
        for key, value in self.scope["headers"]:
            if key == name:
                return value.decode("latin-1")
        return None

    async def body(self) -> bytes:
        """The request body, refused past the size limit (as Litestar refuses it: on the
        declared length first, then on what arrives)."""
        if self._body is not None:
            return self._body
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise PayloadTooLarge(detail="The request body exceeds the size limit.")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                break  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLarge(detail="The request body exceeds the size limit.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self._body = b"".join(chunks)
        return self._body


class _Request(Request[Any, Any, Any]):
    """Litestar's request over an exchange, for the access check (which reads a form's
    CSRF field): its body is the exchange's, read once within the size limit."""

    __slots__ = ("_exchange",)

    def __init__(self, exchange: Exchange) -> None:
        super().__init__(exchange.scope, exchange.receive)
        self._exchange = exchange

    async def body(self) -> bytes:
        return await self._exchange.body()

    async def stream(self) -> AsyncGenerator[bytes, None]:
        yield await self._exchange.body()


class GatewayEndpoint:
    """The ASGI app behind the gateway's routes (reached through :class:`GatewayFront`)."""

    def __init__(self, gateway: Gateway, max_body: int) -> None:
        self._gateway = gateway
        self._max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: _Path = scope["state"][_ROUTE]
        exchange = Exchange(
            scope, receive, send, self._gateway, scope["path_params"], self._max_body
        )
        started = False
        try:
            route = path.by_method.get(str(scope.get("method")))
            if route is None:
                allowed = ", ".join(sorted(path.by_method))
                raise MethodNotAllowed(
                    detail="Method not allowed on this resource.", headers={"Allow": allowed}
                )
            await authorize(_Request(exchange), route.access)
            exchange.tenant_scope = scope["state"].get("tenant_scope")
            answer = await route.handler(exchange)
            if isinstance(answer, EventStream):
                started = True
                await _send_stream(exchange, answer)
            else:
                content = answer.content
                body = content if isinstance(content, bytes) else msgspec.json.encode(content)
                started = True
                await _respond(send, 200, _JSON, answer.headers, body)
        except Exception as exc:
            if started:  # the status has left: nothing to answer with but a cut stream
                log.exception("gateway answer failed", exc_type=type(exc).__name__)
                return
            problem = exc if isinstance(exc, ProblemError) else unexpected(exc)
            await _send_problem(send, problem, scope["path"])


async def _send_problem(send: Send, problem: ProblemError, path: str) -> None:
    body = msgspec.json.encode(problem_document(problem, path))
    await _respond(send, problem.status, PROBLEM_JSON.encode(), problem.headers, body)


async def _respond(
    send: Send, status: int, media_type: bytes, headers: Mapping[str, str], body: bytes
) -> None:
    raw = [(b"content-type", media_type), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_stream(exchange: Exchange, stream: EventStream) -> None:
    """Send each event as it comes; a client that goes away (``http.disconnect``) cancels
    the generation, whose own ``finally`` then accounts for what was generated."""
    send = exchange.send
    headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
    headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in stream.headers.items()
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})

    async def pump() -> None:
        async with contextlib.aclosing(stream.events) as events:
            async for event in events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    sending = asyncio.ensure_future(pump())
    watching = asyncio.ensure_future(_disconnected(exchange.receive))
    try:
        await asyncio.wait((sending, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, watching):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    if sending.done() and not sending.cancelled():
        sending.result()  # a failure while sending is the caller's to log


async def _disconnected(receive: Receive) -> None:
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            return


class GatewayFront:
    """In front of the Litestar app: requests for a gateway route go to ``endpoint``
    (wrapped in the app's middleware), every other request to ``app`` unchanged."""

    def __init__(self, routes: Sequence[Route], endpoint: ASGIApp, app: ASGIApp) -> None:
        self._endpoint = endpoint
        self._app = app
        grouped: dict[str, dict[str, Route]] = {}
        for route in routes:
            grouped.setdefault(route.template, {})[route.method] = route
        self._static: dict[str, _Path] = {}
        self._patterns: list[tuple[re.Pattern[str], _Path]] = []
        for template, by_method in grouped.items():
            first = next(iter(by_method.values()))
            path = _Path(first.name, by_method)
            if "{" in template:
                self._patterns.append((re.compile(first.pattern()), path))
            else:
                self._static[template] = path

    def match(self, path: str) -> tuple[_Path, dict[str, str]] | None:
        """The gateway route path ``path`` (normalized) is on, and its parameters."""
        found = self._static.get(path)
        if found is not None:
            return found, {}
        for pattern, candidate in self._patterns:
            matched = pattern.fullmatch(path)
            if matched is not None:
                return candidate, matched.groupdict()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        normalized = scope["path"]
        if len(normalized) > 1 and normalized.endswith("/"):
            normalized = normalized.rstrip("/") or "/"  # as Litestar's router does
        matched = self.match(normalized)
        if matched is None:
            await self._app(scope, receive, send)
            return
        path, params = matched
        scope["path"] = normalized
        scope.setdefault("state", {})[_ROUTE] = path
        scope["path_params"] = params
        scope["path_template"] = path.name
        await self._endpoint(scope, receive, send)
