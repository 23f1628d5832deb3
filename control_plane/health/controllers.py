"""Liveness, readiness and the control plane's own Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import ControllerRouterHandler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from control_plane import __version__
from control_plane.db.engine import ping
from control_plane.identity.authz import public

# Without its charset: Litestar appends one to text/* types, which would repeat it.
METRICS_MEDIA_TYPE = "; ".join(
    part.strip()
    for part in CONTENT_TYPE_LATEST.split(";")
    if not part.strip().startswith("charset")
)


@get("/healthz", opt=public(), tags=["health"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@get(
    "/readyz",
    opt=public(),
    tags=["health"],
    summary="The database answers",
    responses={
        HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
            data_container=dict[str, str], description="The database does not answer"
        )
    },
)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    try:
        await ping(request.app.state.engine)
    except Exception:  # any database failure means not ready
        return Response(
            {"status": "unavailable", "database": "unreachable"},
            status_code=HTTP_503_SERVICE_UNAVAILABLE,
        )
    return Response({"status": "ready", "database": "ok"}, status_code=HTTP_200_OK)


@get(
    "/metrics",
    opt=public(),
    tags=["health"],
    summary="Prometheus metrics",
    media_type=METRICS_MEDIA_TYPE,
)
async def metrics() -> bytes:
    return generate_latest()


ROUTES: list[ControllerRouterHandler] = [healthz, readyz, metrics]
