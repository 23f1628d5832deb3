"""Portal wiring: templates, static assets, HTML error pages and the page routers."""

from __future__ import annotations

from litestar import Router
from litestar.config.app import AppConfig


def portal_router() -> Router:
    """Every portal page (server-rendered HTML, kept out of the OpenAPI document)."""
    from portal.pages import ROUTES

    return Router(path="/", route_handlers=ROUTES, include_in_schema=False)


def install_portal(config: AppConfig) -> AppConfig:
    from portal.setup import configure

    return configure(config)
