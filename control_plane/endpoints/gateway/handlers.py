"""The gateway's HTTP routes: OpenAI-compatible chat and text completions (streamed over
SSE, always ending with a usage chunk), the models a key may call, and KServe V2
passthrough. Data-plane calls: metered as usage, not written to the audit ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
from litestar import Request, Response, get, post
from litestar.response import Stream

from control_plane.endpoints.gateway import kserve, openai
from control_plane.endpoints.gateway.core import Call, Gateway, UpstreamFailed
from control_plane.identity.authz import TenantScope, public, tenant
from control_plane.identity.roles import Permission

__all__ = ["ROUTES"]

_OPT = {**tenant(Permission.INFERENCE_INVOKE), "data_plane": True}
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _gateway(request: Request[Any, Any, Any]) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _request_id(request: Request[Any, Any, Any]) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


@get("/v1/models", opt=_OPT, include_in_schema=False)
async def list_models(request: Request[Any, Any, Any], tenant: TenantScope) -> dict[str, Any]:
    """The endpoints this key may call (OpenAI's model list)."""
    org_id = tenant.resolve_org(None)
    routes = await _gateway(request).routes.of_org(org_id)
    visible = [
        r for r in routes if not tenant.project_id or r.project_id in (None, tenant.project_id)
    ]
    return {
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


@post("/v1/chat/completions", opt=_OPT, include_in_schema=False, status_code=200)
async def chat_completions(
    request: Request[Any, Any, Any], data: openai.ChatRequest, tenant: TenantScope
) -> Any:
    gateway = _gateway(request)
    call = await gateway.admit(tenant, data.model, _request_id(request))
    prompt = call.text.prompt([{"role": m.role, "content": m.text()} for m in data.messages])
    limit = data.limit()
    if data.stream:
        call.prompt_tokens = call.text.count(prompt)
        return Stream(
            _chat_stream(gateway, call, prompt, limit, data.model),
            media_type="text/event-stream",
            headers=_SSE_HEADERS,
        )
    text = await _collect(gateway, call, prompt, limit)
    used = openai.usage(call.prompt_tokens, call.completion_tokens, call.cost())
    return openai.chat_body(
        call.request_id, data.model, text, openai.finish_reason(call.completion_tokens, limit), used
    )


@post("/v1/completions", opt=_OPT, include_in_schema=False, status_code=200)
async def completions(
    request: Request[Any, Any, Any], data: openai.CompletionRequest, tenant: TenantScope
) -> Any:
    gateway = _gateway(request)
    call = await gateway.admit(tenant, data.model, _request_id(request))
    if data.stream:
        call.prompt_tokens = call.text.count(data.prompt)
        return Stream(
            _completion_stream(gateway, call, data.prompt, data.max_tokens, data.model),
            media_type="text/event-stream",
            headers=_SSE_HEADERS,
        )
    text = await _collect(gateway, call, data.prompt, data.max_tokens)
    used = openai.usage(call.prompt_tokens, call.completion_tokens, call.cost())
    return openai.completion_body(
        call.request_id,
        data.model,
        text,
        openai.finish_reason(call.completion_tokens, data.max_tokens),
        used,
    )


async def _collect(gateway: Gateway, call: Call, prompt: str, limit: int) -> str:
    ok = False
    try:
        text = await gateway.complete(call, prompt, limit)
        ok = True
    finally:
        gateway.account(call, ok=ok)
    return text


async def _chat_stream(
    gateway: Gateway, call: Call, prompt: str, limit: int, model: str
) -> AsyncIterator[bytes]:
    """Deltas as they come, the finish reason, then the usage chunk and [DONE]. A client
    that goes away stops the generation; what was generated until then is billed."""
    ok = False
    try:
        yield openai.chat_chunk(call.request_id, model, delta={"role": "assistant"})
        async for delta in gateway.generate(call, prompt, limit):
            yield openai.chat_chunk(call.request_id, model, delta={"content": delta})
        ok = True
    except UpstreamFailed as failure:
        yield _error_event(failure.detail)
    finally:
        gateway.account(call, ok=ok)
    reason = openai.finish_reason(call.completion_tokens, limit)
    yield openai.chat_chunk(call.request_id, model, reason=reason)
    used = openai.usage(call.prompt_tokens, call.completion_tokens, call.cost())
    yield openai.chat_chunk(call.request_id, model, used=used)
    yield openai.DONE


async def _completion_stream(
    gateway: Gateway, call: Call, prompt: str, limit: int, model: str
) -> AsyncIterator[bytes]:
    ok = False
    try:
        async for delta in gateway.generate(call, prompt, limit):
            yield openai.completion_chunk(call.request_id, model, text=delta)
        ok = True
    except UpstreamFailed as failure:
        yield _error_event(failure.detail)
    finally:
        gateway.account(call, ok=ok)
    reason = openai.finish_reason(call.completion_tokens, limit)
    yield openai.completion_chunk(call.request_id, model, reason=reason)
    used = openai.usage(call.prompt_tokens, call.completion_tokens, call.cost())
    yield openai.completion_chunk(call.request_id, model, used=used)
    yield openai.DONE


def _error_event(detail: str) -> bytes:

    return (
        b"data: "
        + msgspec.json.encode({"error": {"message": detail, "type": "upstream_error"}})
        + b"\n\n"
    )


# --- KServe V2 ---------------------------------------------------------------------------


@post("/v2/models/{name:str}/infer", opt=_OPT, include_in_schema=False, status_code=200)
async def v2_infer(
    request: Request[Any, Any, Any], name: str, tenant: TenantScope
) -> Response[bytes]:
    """KServe V2 inference on an endpoint (``tritonclient.http`` pointed at the control
    plane): the same admission, routing and metering as the OpenAI routes; the replica is
    called over gRPC streaming (Triton serves decoupled models only there)."""
    gateway = _gateway(request)
    parsed = kserve.parse_request(await request.body(), request.headers.get(kserve.HEADER_LENGTH))
    call = await gateway.admit(tenant, name, _request_id(request))
    text = await _collect(gateway, call, parsed.text, parsed.max_tokens or 16)
    return Response(
        content=kserve.response_body(name, str(call.version.number), text, parsed.request_id),
        media_type="application/json",
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


@get("/v2/models/{name:str}", opt=_OPT, include_in_schema=False)
async def v2_metadata(request: Request[Any, Any, Any], name: str, tenant: TenantScope) -> Any:
    """The model's V2 metadata (inputs and outputs) as Triton reports it, under the
    endpoint's name."""
    gateway = _gateway(request)
    call = await gateway.admit(tenant, name, _request_id(request))
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
    return metadata


@get("/v2/health/ready", opt=public(), include_in_schema=False)
async def v2_ready() -> dict[str, bool]:
    """V2 clients ask before calling; the gateway itself is ready when it answers."""
    return {"ready": True}


ROUTES = [list_models, chat_completions, completions, v2_infer, v2_metadata, v2_ready]
