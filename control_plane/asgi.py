"""ASGI entry point for servers: ``uvicorn control_plane.asgi:app``.

A server process, once started and before its first request, compiles every portal
template and then moves its start-up heap out of the garbage collector's way (see
:mod:`control_plane.heap`); apps made with ``create_app`` elsewhere (tests, tools) do
neither.
"""

from __future__ import annotations

import structlog
from litestar import Litestar
from litestar.plugins.jinja import JinjaTemplateEngine

from control_plane.app import create_app
from control_plane.heap import freeze_startup_heap

__all__ = ["app", "compile_templates"]

log = structlog.get_logger("control_plane.asgi")


def compile_templates(app: Litestar) -> None:
    """Compile every template now rather than on its page's first view: compiling one took
    5-80 ms of the event loop, which every request in flight on that replica waited for
    (a new replica of a rolling upgrade paid it under traffic, page by page)."""
    engine = app.template_engine
    if not isinstance(engine, JinjaTemplateEngine):
        return
    names = engine.engine.list_templates()
    for name in names:
        engine.engine.get_template(name)
    log.info("templates compiled", templates=len(names))


app = create_app()
app.on_startup.extend([compile_templates, freeze_startup_heap])
