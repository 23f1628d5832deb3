"""The baseline: a bare Litestar hello-world, served exactly like the control plane.

``/readyz`` exists only so the benchmark waits for both apps the same way.
"""

from __future__ import annotations

from litestar import Litestar, get


@get("/")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


app = Litestar(route_handlers=[hello, readyz], debug=False)
