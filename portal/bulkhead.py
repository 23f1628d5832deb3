"""At most ``limit`` portal pages in progress at once in a process; the rest wait their turn
before any of their work starts (no database connection held while waiting). A page's turn
ends when its answer starts (a slow client's download does not hold it).

A page costs two to three times the CPU of an API call (its queries, then its template).
On a replica near the limit of its core, every page in progress adds turns to the one
event loop that API calls and inference requests also wait for; holding pages back to a
few at a time keeps the API's tail latency down when a burst of page views arrives, and a
page waits a little longer instead (people reading a page notice 50 ms less than a program
calling the API does).
"""

from __future__ import annotations

import asyncio

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send


class PageTurns:
    """The turns the pages of one process share: ``limit`` at a time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.semaphore = asyncio.Semaphore(limit)


class PageBulkhead:
    """ASGI middleware of the portal's pages (see the module's docstring). Litestar builds
    one per route handler; they all share the process's :class:`PageTurns`."""

    def __init__(self, app: ASGIApp, turns: PageTurns) -> None:
        self.app = app
        self.turns = turns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        slots = self.turns.semaphore
        await slots.acquire()
        holding = True

        async def send_and_give_back(message: Message) -> None:
            # The page's work (queries, template) is done when its answer starts: the turn
            # goes back then, not after the body reached a slow client.
            nonlocal holding
            if holding and message["type"] == "http.response.start":
                holding = False
                slots.release()
            await send(message)

        try:
            await self.app(scope, receive, send_and_give_back)
        finally:
            if holding:
                slots.release()
