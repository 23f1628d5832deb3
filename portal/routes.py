"""Portal wiring: templates, static assets, HTML error pages and the page routers."""

from __future__ import annotations

from litestar import Router
from litestar.config.app import AppConfig
from litestar.middleware import DefineMiddleware

from portal.bulkhead import PageBulkhead, PageTurns


def portal_router(pages_at_once: int) -> Router:
    """Every portal page (server-rendered HTML, kept out of the OpenAPI document), at most
    ``pages_at_once`` in progress at a time in this process (:mod:`portal.bulkhead`)."""
    from portal.pages import ROUTES

    bulkhead = DefineMiddleware(PageBulkhead, turns=PageTurns(pages_at_once))
    return Router(path="/", route_handlers=ROUTES, include_in_schema=False, middleware=[bulkhead])


def install_portal(config: AppConfig) -> AppConfig:
    from portal.setup import configure

    return configure(config)
