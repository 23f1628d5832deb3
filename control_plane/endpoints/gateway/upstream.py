"""Calls to a replica's Triton server over gRPC, streaming. Models follow the
text-generation convention of Triton's generate models: ``text_input``, ``max_tokens``,
``stream`` in, ``text_output`` out, decoupled (one response per delta).

Two ways to call: a streamed answer gets a gRPC stream of its own (one request, the deltas
as they come, until Triton's final response; cancelling it stops the generation), and an
answer wanted in one piece goes over the replica's :class:`SharedStreams` (long-lived
streams that carry every such request, each under its own id): a message each way instead
of a new gRPC call per request.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferResult, service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

__all__ = ["Clients", "SharedStreams", "UpstreamError", "UpstreamUnavailable", "generate"]

# As tritonclient sets them: prompts may be far larger than gRPC's 4 MB default.
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.max_receive_message_length", 2**31 - 1),
]


class UpstreamError(Exception):
    """Triton refused or failed the request."""


class UpstreamUnavailable(UpstreamError):
    """The replica could not be reached before anything was generated: safe to retry
    on another replica."""


class Clients:
    """Per replica, one gRPC client for streamed calls and shared streams for the others,
    reused by every request."""

    def __init__(self) -> None:
        self._clients: dict[str, grpcclient.InferenceServerClient] = {}
        self._shared: dict[str, SharedStreams] = {}

    def shared(self, url: str) -> SharedStreams:
        streams = self._shared.get(url)
        if streams is None:
            streams = self._shared[url] = SharedStreams(url)
        return streams

    def get(self, url: str) -> grpcclient.InferenceServerClient:
        client = self._clients.get(url)
        if client is None:
            client = grpcclient.InferenceServerClient(url)
            self._clients[url] = client
        return client

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        shared, self._shared = self._shared, {}
        for client in clients.values():
            await client.close()
        for streams in shared.values():
            await streams.close()


class _Pending:
    """A request on a shared stream: its deltas so far and the answer to come."""

    __slots__ = ("answer", "parts")

    def __init__(self, answer: asyncio.Future[str]) -> None:
        self.answer = answer
        self.parts: list[str] = []


class _Call:
    """One ``ModelStreamInfer`` call and the requests waiting on it. When it ends, for
    whatever reason, every request still waiting fails with the reason."""

    def __init__(self, stub: Any) -> None:
        self.rpc = stub.ModelStreamInfer()
        self.pending: dict[str, _Pending] = {}
        self.write_lock = asyncio.Lock()  # gRPC allows one write at a time per call
        self.writers = 0  # requests writing or waiting to write on it
        self.ended = False
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        error: UpstreamError = UpstreamUnavailable("the replica ended the stream")
        try:
            while True:
                response = await self.rpc.read()
                if response is grpc.aio.EOF:
                    break
                self._deliver(response)
        except grpc.aio.AioRpcError as exc:
            error = _classify(exc, received=False)
        except asyncio.CancelledError:
            error = UpstreamUnavailable("the gateway closed the stream")
            raise
        finally:
            self.ended = True
            pending, self.pending = self.pending, {}
            for waiting in pending.values():
                if not waiting.answer.done():
                    waiting.answer.set_exception(error)

    def _deliver(self, response: Any) -> None:
        infer = response.infer_response
        waiting = self.pending.get(infer.id)
        if waiting is None:
            return  # its caller stopped waiting (a timeout); Triton finished it anyway
        if response.error_message:
            del self.pending[infer.id]
            waiting.answer.set_exception(UpstreamError(response.error_message))
            return
        output = InferResult(infer).as_numpy("text_output")
        if output is not None and output.size:
            waiting.parts.append(_text(output.reshape(-1)[0]))
        final = infer.parameters.get("triton_final_response")
        if final is not None and final.bool_param:
            del self.pending[infer.id]
            waiting.answer.set_result("".join(waiting.parts))


class SharedStreams:
    """Long-lived gRPC streams to a replica, on one channel, for answers wanted in one
    piece. Requests carry ids of their own (``<request id>.<n>``) and ask for Triton's
    empty final response, so each answer's end is known without closing a stream. A stream
    that breaks fails the requests on it (unreachable: retried elsewhere by the caller) and
    is not used again.

    gRPC takes one write at a time per stream, and a write completes only on a later turn
    of the event loop: on a busy gateway (turns of ~20 ms) one stream carried fewer than 50
    requests a second, and the requests queued behind each other's writes for seconds while
    Triton answered each in 6 ms (bench.load, one replica at 320 req/s). So a request
    writes on a stream that is not writing, another stream is opened when all are (up to
    ``most``), and past that a request waits on the stream with the fewest writers.
    """

    def __init__(self, url: str, most: int = 8) -> None:
        self._channel = grpc.aio.insecure_channel(url, options=_CHANNEL_OPTIONS)
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        self._calls: list[_Call] = []
        self._most = most
        self._ids = itertools.count()

    @property
    def open(self) -> int:
        """How many streams are open."""
        return sum(not call.ended for call in self._calls)

    def _pick(self) -> _Call:
        for call in self._calls:
            if not call.writers and not call.ended:
                return call
        self._calls = [call for call in self._calls if not call.ended]
        if len(self._calls) < self._most:
            self._calls.append(_Call(self._stub))
            return self._calls[-1]
        return min(self._calls, key=lambda call: call.writers)

    async def send(
        self, model: str, prompt: str, *, max_tokens: int, request_id: str, answer_within: float
    ) -> Awaitable[str]:
        """Send the request; returns the answer to await (the caller may work meanwhile)."""
        call = self._pick()
        upstream_id = f"{request_id}.{next(self._ids)}"
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        call.pending[upstream_id] = _Pending(answer)
        call.writers += 1
        try:
            async with call.write_lock:
                await call.rpc.write(_request(model, prompt, max_tokens, upstream_id))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            call.pending.pop(upstream_id, None)
            if not answer.cancel():
                answer.exception()  # the stream's end reached it first; this error says more
            raise UpstreamUnavailable(f"the stream to the replica is closed: {exc}") from exc
        finally:
            call.writers -= 1
        return self._wait(call, upstream_id, answer, answer_within)

    async def _wait(
        self, call: _Call, upstream_id: str, answer: asyncio.Future[str], seconds: float
    ) -> str:
        try:
            async with asyncio.timeout(seconds):
                return await answer
        except TimeoutError as exc:
            raise UpstreamError(f"no answer from the replica within {seconds:.0f} s") from exc
        finally:
            call.pending.pop(upstream_id, None)

    async def close(self) -> None:
        calls, self._calls = self._calls, []
        for call in calls:
            call.rpc.cancel()
            call.reader.cancel()
        await asyncio.gather(*(call.reader for call in calls), return_exceptions=True)
        await self._channel.close()


def _request(model: str, prompt: str, max_tokens: int, request_id: str) -> Any:
    """A non-streamed generate request, its tensors in Triton's raw little-endian layout
    (BYTES elements are length-prefixed)."""
    request = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    for name, datatype in (("text_input", "BYTES"), ("max_tokens", "INT32"), ("stream", "BOOL")):
        tensor = request.inputs.add()
        tensor.name = name
        tensor.datatype = datatype
        tensor.shape.append(1)
    encoded = prompt.encode()
    request.raw_input_contents.extend(
        [struct.pack("<I", len(encoded)) + encoded, struct.pack("<i", max_tokens), b"\x00"]
    )
    request.parameters["triton_enable_empty_final_response"].bool_param = True
    return request


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
