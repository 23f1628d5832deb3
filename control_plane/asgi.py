"""ASGI entry point for servers: ``uvicorn control_plane.asgi:app``."""

from __future__ import annotations

from control_plane.app import create_app

app = create_app()
