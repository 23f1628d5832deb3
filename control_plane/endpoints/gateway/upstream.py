"""Calls to a replica's Triton server over gRPC, streaming: one request, the model's text
deltas as they come, until Triton's final response. Models follow the text-generation
convention of Triton's generate models: ``text_input``, ``max_tokens``, ``stream`` in,
``text_output`` out, decoupled (one response per delta)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

__all__ = ["Clients", "UpstreamError", "UpstreamUnavailable", "generate"]


class UpstreamError(Exception):
    """Triton refused or failed the request."""


class UpstreamUnavailable(UpstreamError):
    """The replica could not be reached before anything was generated: safe to retry
    on another replica."""


class Clients:
    """One gRPC client (one HTTP/2 connection) per replica, reused by every request."""

    def __init__(self) -> None:
        self._clients: dict[str, grpcclient.InferenceServerClient] = {}

    def get(self, url: str) -> grpcclient.InferenceServerClient:
        client = self._clients.get(url)
        if client is None:
            client = grpcclient.InferenceServerClient(url)
            self._clients[url] = client
        return client

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()


def _inputs(prompt: str, max_tokens: int, stream: bool) -> list[grpcclient.InferInput]:
    text = grpcclient.InferInput("text_input", [1], "BYTES")
    text.set_data_from_numpy(np.array([prompt.encode()], dtype=np.object_))
    limit = grpcclient.InferInput("max_tokens", [1], "INT32")
    limit.set_data_from_numpy(np.array([max_tokens], dtype=np.int32))
    flag = grpcclient.InferInput("stream", [1], "BOOL")
    flag.set_data_from_numpy(np.array([stream], dtype=np.bool_))
    return [text, limit, flag]


async def generate(
    client: grpcclient.InferenceServerClient,
    model: str,
    prompt: str,
    *,
    max_tokens: int,
    request_id: str,
    stream_timeout: float,
    stream: bool = True,
) -> AsyncIterator[str]:
    """The generated text, delta by delta (``stream``), or in one piece. Closing the
    iterator early (a client that went away) cancels the request on the server."""

    async def requests() -> AsyncIterator[dict[str, Any]]:
        # Half-closing after one request lets Triton end the stream once the model sent
        # its final flag (with or without a last delta).
        yield {
            "model_name": model,
            "inputs": _inputs(prompt, max_tokens, stream),
            "request_id": request_id,
        }

    responses = client.stream_infer(inputs_iterator=requests(), stream_timeout=stream_timeout)
    received = False
    try:
        async for result, error in responses:
            if error is not None:
                raise _classify(error, received)
            response = result.get_response()
            output = result.as_numpy("text_output")
            if output is not None and output.size:
                received = True
                yield _text(output.reshape(-1)[0])
            final = response.parameters.get("triton_final_response")
            if final is not None and final.bool_param:
                return
    except InferenceServerException as exc:
        raise _classify(exc, received) from exc
    finally:
        cancel = getattr(responses, "cancel", None)
        if callable(cancel):
            cancel()
        await asyncio.sleep(0)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _classify(error: Exception, received: bool) -> UpstreamError:
    text = str(error)
    unreachable = any(s in text for s in ("UNAVAILABLE", "failed to connect", "Connection refused"))
    if unreachable and not received:
        return UpstreamUnavailable(text)
    return UpstreamError(text)
