"""Install the portal on the app: Jinja2 templates, static assets and HTML error pages."""

from __future__ import annotations

from litestar.config.app import AppConfig
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from control_plane.identity.authz import public
from portal.errors import html_error_renderer
from portal.templating import STATIC_DIR, make_engine


def configure(config: AppConfig) -> AppConfig:
    """``on_app_init`` hook: the app factory knows nothing of templates or assets."""
    config.template_config = TemplateConfig(instance=make_engine())
    config.route_handlers.append(
        create_static_files_router(
            path="/static",
            directories=[STATIC_DIR],
            opt=public(),
            include_in_schema=False,
            # Asset names carry no hash, so browsers revalidate after an hour.
            cache_control=CacheControlHeader(max_age=3600, public=True),
        )
    )
    config.state["html_error_renderer"] = html_error_renderer
    return config
