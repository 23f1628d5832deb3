"""Dependencies every controller may ask for by name."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.di import Provide
from litestar.params import Parameter

from control_plane.clock import Clock
from control_plane.http.database import provide_db_session
from control_plane.http.pagination import PageRequest, page_request
from control_plane.identity.authz import (
    provide_principal,
    provide_provider_scope,
    provide_tenant_scope,
)
from control_plane.settings import Settings


def provide_page(
    request: Request[Any, Any, Any],
    limit: Annotated[
        int | None, Parameter(ge=1, le=200, description="Items per page (default 50).")
    ] = None,
    cursor: Annotated[
        str | None, Parameter(max_length=400, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageRequest:
    settings: Settings = request.app.state.settings
    return page_request(limit, cursor, settings.page_size_default, settings.page_size_max)


def provide_clock(request: Request[Any, Any, Any]) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def provide_settings(request: Request[Any, Any, Any]) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DEPENDENCIES = {
    "db": Provide(provide_db_session),
    "clock": Provide(provide_clock, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "page": Provide(provide_page, sync_to_thread=False),
    "tenant": Provide(provide_tenant_scope, sync_to_thread=False),
    "operator": Provide(provide_provider_scope, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
}
