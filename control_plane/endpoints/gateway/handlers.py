"""The gateway's routes: OpenAI-compatible chat and text completions (streamed over SSE,
always ending with a usage chunk), the models a key may call, and KServe V2 passthrough.
Data-plane calls: metered as usage, not written to the audit ledger. Served by
:mod:`control_plane.endpoints.gateway.asgi`, outside Litestar's router."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable

import httpx
import msgspec

from control_plane.endpoints.gateway import kserve, openai
from control_plane.endpoints.gateway.asgi import Answer, EventStream, Exchange, Route
from control_plane.endpoints.gateway.core import Call, Gateway, UpstreamFailed
from control_plane.http.problems import decode_body
from control_plane.identity.authz import ACCESS_KEY, Access, public, tenant
from control_plane.identity.roles import Permission

__all__ = ["ROUTES"]

_INVOKE: Access = tenant(Permission.INFERENCE_INVOKE)[ACCESS_KEY]
_PUBLIC: Access = public()[ACCESS_KEY]
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def list_models(exchange: Exchange) -> Answer:
    """The endpoints this key may call (OpenAI's model list)."""
    scope = exchange.tenant
    org_id = scope.resolve_org(None)
    routes = await exchange.gateway.routes.of_org(org_id)
    visible = [
        r for r in routes if not scope.project_id or r.project_id in (None, scope.project_id)
    ]
    return Answer(
        {
            "object": "list",
            "data": [
                {
                    "id": r.name,
                    "object": "model",
                    "created": 0,
                    "owned_by": org_id,
                    "region": r.region,
                    "ready": bool(r.upstreams),
                }
                for r in visible
            ],
        }
    )


async def chat_completions(exchange: Exchange) -> Answer | EventStream:
    data = decode_body(await exchange.body(), openai.ChatRequest)
    gateway = exchange.gateway
    call = await gateway.admit(exchange.tenant, data.model, exchange.request_id)
    prompt = call.text.prompt([{"role": m.role, "content": m.text()} for m in data.messages])
    limit = data.limit()
    if data.stream:
        call.prompt_tokens = call.text.count(prompt)
        return EventStream(_chat_stream(gateway, call, prompt, limit, data.model), _SSE_HEADERS)
    text = await _collect(gateway, call, prompt, limit)
    used = openai.usage(call.prompt_tokens, call.completion_tokens, call.cost())
    return Answer(
        openai.chat_body(
            call.request_id,
            data.model,
            text,
            openai.finish_reason(call.completion_tokens, limit),
            used,
        )
    )


async def completions(exchange: Exchange) -> Answer | EventStream:
    data = decode_body(await exchange.body(), openai.CompletionRequest)
    gateway = exchange.gateway
    call = await gateway.admit(exchange.tenant, data.model, exchange.request_id)
    if data.stream:
        call.prompt_tokens = call.text.count(data.prompt)
        return EventStream(
            _completion_stream(gateway, call, data.prompt, data.max_tokens, data.model),
            _SSE_HEADERS,
        )
    text = await _collect(gateway, call, data.prompt, data.max_tokens)
    used = openai.usage(call.prompt_tokens, call.completion_tokens, call.cost())
    return Answer(
        openai.completion_body(
            call.request_id,
            data.model,
            text,
            openai.finish_reason(call.completion_tokens, data.max_tokens),
            used,
        )
    )


async def _collect(gateway: Gateway, call: Call, prompt: str, limit: int) -> str:
    ok = False
    try:
        text = await gateway.complete(call, prompt, limit)
        ok = True
    finally:
        gateway.account(call, ok=ok)
    return text


async def _stream(
    gateway: Gateway,
    call: Call,
    prompt: str,
    limit: int,
    piece: Callable[[str], bytes],
    closing: Callable[..., bytes],
    opening: bytes = b"",
) -> AsyncGenerator[bytes, None]:
    """Deltas as they come (each as ``piece``), the finish reason, then the usage chunk
    and [DONE] (both as ``closing``). A client that goes away stops the generation; what
    was generated until then is billed."""
    ok = False
    try:
        if opening:
            yield opening
        async for delta in gateway.generate(call, prompt, limit):
            yield piece(delta)
        ok = True
    except UpstreamFailed as failure:
        yield _error_event(failure.detail)
    finally:
        gateway.account(call, ok=ok)
    yield closing(reason=openai.finish_reason(call.completion_tokens, limit))
    yield closing(used=openai.usage(call.prompt_tokens, call.completion_tokens, call.cost()))
    yield openai.DONE


def _chat_stream(
    gateway: Gateway, call: Call, prompt: str, limit: int, model: str
) -> AsyncGenerator[bytes, None]:
    rid = call.request_id
    return _stream(
        gateway, call, prompt, limit,
        piece=lambda delta: openai.chat_chunk(rid, model, delta={"content": delta}),
        closing=functools.partial(openai.chat_chunk, rid, model),
        opening=openai.chat_chunk(rid, model, delta={"role": "assistant"}),
    )  # fmt: skip


def _completion_stream(
    gateway: Gateway, call: Call, prompt: str, limit: int, model: str
) -> AsyncGenerator[bytes, None]:
    rid = call.request_id
    return _stream(
        gateway, call, prompt, limit,
        piece=lambda delta: openai.completion_chunk(rid, model, text=delta),
        closing=functools.partial(openai.completion_chunk, rid, model),
    )  # fmt: skip


def _error_event(detail: str) -> bytes:
    return (
        b"data: "
        + msgspec.json.encode({"error": {"message": detail, "type": "upstream_error"}})
        + b"\n\n"
    )


# --- KServe V2 ---------------------------------------------------------------------------


async def v2_infer(exchange: Exchange) -> Answer:
    """KServe V2 inference on an endpoint (``tritonclient.http`` pointed at the control
    plane): the same admission, routing and metering as the OpenAI routes; the replica is
    called over gRPC streaming (Triton serves decoupled models only there)."""
    name = exchange.params["name"]
    gateway = exchange.gateway
    parsed = kserve.parse_request(
        await exchange.body(), exchange.header(kserve.HEADER_LENGTH.encode())
    )
    call = await gateway.admit(exchange.tenant, name, exchange.request_id)
    text = await _collect(gateway, call, parsed.text, parsed.max_tokens or 16)
    return Answer(
        kserve.response_body(name, str(call.version.number), text, parsed.request_id),
        headers={
            "x-usage-prompt-tokens": str(call.prompt_tokens),
            "x-usage-completion-tokens": str(call.completion_tokens),
            **_cost_headers(call),
        },
    )


def _cost_headers(call: Call) -> dict[str, str]:
    cost = call.cost()
    return (
        {} if cost is None else {"x-usage-cost": f"{cost[0]:f}", "x-usage-cost-currency": cost[1]}
    )


async def v2_metadata(exchange: Exchange) -> Answer:
    """The model's V2 metadata (inputs and outputs) as Triton reports it, under the
    endpoint's name."""
    name = exchange.params["name"]
    gateway = exchange.gateway
    call = await gateway.admit(exchange.tenant, name, exchange.request_id)
    upstream = await gateway.pick(call)
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            answer = await client.get(
                f"http://{upstream.http_url}/v2/models/{call.version.served_model}"
            )
    except httpx.HTTPError as exc:
        raise UpstreamFailed(detail=f"The model server failed: {type(exc).__name__}") from exc
    finally:
        upstream.outstanding -= 1
    metadata = answer.json()
    if isinstance(metadata, dict):
        metadata["name"] = name
    return Answer(metadata)


async def v2_ready(exchange: Exchange) -> Answer:
    """V2 clients ask before calling; the gateway itself is ready when it answers."""
    return Answer({"ready": True})


ROUTES = [
    Route("GET", "/v1/models", _INVOKE, list_models),
    Route("POST", "/v1/chat/completions", _INVOKE, chat_completions),
    Route("POST", "/v1/completions", _INVOKE, completions),
    Route("POST", "/v2/models/{name:str}/infer", _INVOKE, v2_infer),
    Route("GET", "/v2/models/{name:str}", _INVOKE, v2_metadata),
    Route("GET", "/v2/health/ready", _PUBLIC, v2_ready),
]
