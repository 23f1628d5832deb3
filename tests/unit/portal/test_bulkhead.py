"""The portal's page bulkhead: at most N pages in progress, the rest wait their turn."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portal.bulkhead import PageBulkhead, PageTurns


class Recorder:
    """An inner app that holds each request until released, noting how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        await self.release.wait()
        self.running -= 1
        await send({"type": "done", "path": scope.get("path")})


async def _nothing() -> dict[str, Any]:
    return {}


async def test_no_more_than_the_limit_run_at_once_and_every_request_is_answered() -> None:
    inner = Recorder()
    bulkhead = PageBulkhead(inner, PageTurns(2))
    answered: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        answered.append(message["path"])

    paths = [f"/page-{n}" for n in range(6)]
    calls = [asyncio.create_task(bulkhead({"type": "http", "path": p}, _nothing, send))
             for p in paths]  # fmt: skip
    await asyncio.sleep(0.05)
    assert inner.running == 2  # four wait their turn, none started
    inner.release.set()
    await asyncio.wait_for(asyncio.gather(*calls), timeout=5)
    assert inner.most == 2
    assert sorted(answered) == paths


async def test_a_failing_page_gives_its_turn_back() -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    bulkhead = PageBulkhead(failing, PageTurns(1))
    for _ in range(3):  # with the slot kept by a failure, the second call would time out
        with pytest.raises(RuntimeError, match="boom"):
            await asyncio.wait_for(bulkhead({"type": "http"}, _nothing, _nothing), timeout=2)


async def test_websockets_are_not_held() -> None:
    inner = Recorder()
    bulkhead = PageBulkhead(inner, PageTurns(1))
    sends: list[Any] = []

    async def send(message: Any) -> None:
        sends.append(message)

    first = asyncio.create_task(bulkhead({"type": "http", "path": "/a"}, _nothing, send))
    socket = asyncio.create_task(bulkhead({"type": "websocket", "path": "/ws"}, _nothing, send))
    await asyncio.sleep(0.05)
    assert inner.running == 2
    inner.release.set()
    await asyncio.gather(first, socket)


async def test_the_turn_is_given_back_when_the_answer_starts_not_after_its_body() -> None:
    body_sent = asyncio.Event()
    started: list[str] = []

    async def page(scope: Any, receive: Any, send: Any) -> None:
        started.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/slow-download":
            await body_sent.wait()  # a client reading the body slowly
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def send(message: Any) -> None:
        pass

    bulkhead = PageBulkhead(page, PageTurns(1))
    slow = asyncio.create_task(bulkhead({"type": "http", "path": "/slow-download"}, _nothing, send))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(bulkhead({"type": "http", "path": "/next"}, _nothing, send), timeout=2)
    assert started == ["/slow-download", "/next"]
    body_sent.set()
    await slow


async def test_the_pages_of_every_route_share_the_process_turns() -> None:
    inner = Recorder()
    turns = PageTurns(2)
    routes = [PageBulkhead(inner, turns) for _ in range(3)]  # one per route handler
    answered: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        answered.append(message["path"])

    calls = [asyncio.create_task(route({"type": "http", "path": f"/r{n}"}, _nothing, send))
             for n, route in enumerate(routes * 2)]  # fmt: skip
    await asyncio.sleep(0.05)
    assert inner.running == 2
    inner.release.set()
    await asyncio.wait_for(asyncio.gather(*calls), timeout=5)
    assert inner.most == 2
    assert len(answered) == 6
