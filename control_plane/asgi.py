"""ASGI entry point for servers: ``uvicorn control_plane.asgi:app``.

A server process also moves its start-up heap out of the garbage collector's way once
start-up is done (see :mod:`control_plane.heap`); apps made with ``create_app`` elsewhere
(tests, tools) leave the collector as it is.
"""

from __future__ import annotations

from control_plane.app import create_app
from control_plane.heap import freeze_startup_heap

app = create_app()
app.on_startup.append(freeze_startup_heap)
