"""Portal wiring: templates, static assets, HTML error pages and the page routers."""

from __future__ import annotations

from litestar import Router
from litestar.config.app import AppConfig


def portal_router() -> Router:
    from portal.pages import ROUTES

    return Router(path="/", route_handlers=ROUTES)


def install_portal(config: AppConfig) -> AppConfig:
    from portal.setup import configure

    return configure(config)
