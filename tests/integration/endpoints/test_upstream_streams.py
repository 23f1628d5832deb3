"""The gateway's shared streams to a replica, against a real Triton: each answer wanted in
one piece reaches its own caller, however many are in flight; requests in flight together
write on streams of their own (up to the most allowed) instead of queueing behind one
stream's writes; and a stream that ends fails the requests on it and is not used again."""

from __future__ import annotations

import asyncio

import pytest

from control_plane.endpoints.gateway.upstream import SharedStreams, UpstreamError
from control_plane.endpoints.triton.server import TritonServer
from tests.fixtures.peers.triton import TINY, TINY_SLOW, generate

pytestmark = pytest.mark.peer_triton

PROMPTS = [f"question {n} about sovereign regions" for n in range(12)]


async def _answer(streams: SharedStreams, model: str, prompt: str, request_id: str) -> str:
    answer = await streams.send(
        model, prompt, max_tokens=4, request_id=request_id, answer_within=30
    )
    return await answer


class TestSharedStreams:
    async def test_answers_in_flight_together_each_reach_their_caller(
        self, triton: TritonServer
    ) -> None:
        expected = [generate(triton, TINY, p, max_tokens=4, stream=False).text for p in PROMPTS]
        assert len(set(expected)) > 1  # the prompts tell the answers apart
        streams = SharedStreams(triton.grpc_url, most=4)
        try:
            got = await asyncio.gather(
                *(_answer(streams, TINY, p, f"req{n}") for n, p in enumerate(PROMPTS))
            )
            assert got == expected
            assert streams.open == 4  # twelve writes at once: as many streams as allowed
        finally:
            await streams.close()

    async def test_one_request_at_a_time_keeps_to_one_stream(self, triton: TritonServer) -> None:
        streams = SharedStreams(triton.grpc_url)
        try:
            for n, prompt in enumerate(PROMPTS[:5]):
                expected = generate(triton, TINY, prompt, max_tokens=4, stream=False).text
                assert await _answer(streams, TINY, prompt, f"one{n}") == expected
            assert streams.open == 1
        finally:
            await streams.close()

    async def test_an_ended_stream_fails_its_requests_and_the_next_one_opens_another(
        self, triton: TritonServer
    ) -> None:
        streams = SharedStreams(triton.grpc_url, most=1)
        try:
            waiting = await streams.send(
                TINY_SLOW, "slow one", max_tokens=8, request_id="cut", answer_within=30
            )
            await asyncio.sleep(0.1)  # written, and being answered token by token
            streams._calls[0].rpc.cancel()  # the stream ends under the request
            with pytest.raises(UpstreamError):
                await waiting
            assert streams.open == 0
            expected = generate(triton, TINY, "after", max_tokens=4, stream=False).text
            assert await _answer(streams, TINY, "after", "next") == expected
            assert streams.open == 1
        finally:
            await streams.close()
