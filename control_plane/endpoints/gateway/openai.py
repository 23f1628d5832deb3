"""The OpenAI-compatible request and response bodies the gateway speaks (the fields
clients send; unknown ones are ignored, as OpenAI-compatible servers do)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

MaxTokens = Annotated[int, Meta(ge=1, le=32_768)]
DEFAULT_MAX_TOKENS = 256


class ContentPart(msgspec.Struct):
    type: str
    text: str = ""


class Message(msgspec.Struct):
    role: Annotated[str, Meta(min_length=1, max_length=32)]
    content: Annotated[str, Meta(max_length=1_000_000)] | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content if p.type == "text")
        return self.content or ""


class StreamOptions(msgspec.Struct):
    include_usage: bool = True


class ChatRequest(msgspec.Struct):
    model: Annotated[str, Meta(min_length=1, max_length=63)]
    messages: Annotated[list[Message], Meta(min_length=1, max_length=1024)]
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    n: Annotated[int, Meta(ge=1, le=1)] = 1
    user: Annotated[str, Meta(max_length=256)] | None = None

    def limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS


class CompletionRequest(msgspec.Struct):
    model: Annotated[str, Meta(min_length=1, max_length=63)]
    prompt: Annotated[str, Meta(max_length=1_000_000)]
    max_tokens: MaxTokens = 16
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    n: Annotated[int, Meta(ge=1, le=1)] = 1
    user: Annotated[str, Meta(max_length=256)] | None = None


class Usage(msgspec.Struct, omit_defaults=True):
    """OpenAI's usage, plus (as OpenRouter does) what the call cost: ``cost`` before tax,
    a decimal string in ``cost_currency``, when the region has a price book."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: str | None = None
    cost_currency: str | None = None


def usage(prompt: int, completion: int, cost: tuple[Decimal, str] | None = None) -> Usage:
    if cost is None:
        return Usage(prompt, completion, prompt + completion)
    return Usage(prompt, completion, prompt + completion, f"{cost[0]:f}", cost[1])


def finish_reason(completion_tokens: int, limit: int) -> Literal["stop", "length"]:
    return "length" if completion_tokens >= limit else "stop"


def chat_body(request_id: str, model: str, text: str, reason: str, used: Usage) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
        ],
        "usage": msgspec.to_builtins(used),
    }


def completion_body(
    request_id: str, model: str, text: str, reason: str, used: Usage
) -> dict[str, Any]:
    return {
        "id": f"cmpl-{request_id}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": reason, "logprobs": None}],
        "usage": msgspec.to_builtins(used),
    }


def chat_chunk(
    request_id: str,
    model: str,
    *,
    delta: dict[str, str] | None = None,
    reason: str | None = None,
    used: Usage | None = None,
) -> bytes:
    choices = (
        [] if used is not None else [{"index": 0, "delta": delta or {}, "finish_reason": reason}]
    )
    body: dict[str, Any] = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if used is not None:
        body["usage"] = msgspec.to_builtins(used)
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


def completion_chunk(
    request_id: str,
    model: str,
    *,
    text: str = "",
    reason: str | None = None,
    used: Usage | None = None,
) -> bytes:
    choices = (
        []
        if used is not None
        else [{"index": 0, "text": text, "finish_reason": reason, "logprobs": None}]
    )
    body: dict[str, Any] = {
        "id": f"cmpl-{request_id}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if used is not None:
        body["usage"] = msgspec.to_builtins(used)
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


DONE = b"data: [DONE]\n\n"
