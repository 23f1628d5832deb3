"""What each served model version takes and gives, read once from a ready replica: its
inputs and outputs from Triton's model metadata, batching and transaction policy from
its config. Shown with the version in the API and portal."""

from __future__ import annotations

from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.endpoints import repository
from control_plane.endpoints.gateway.routing import RouteTable
from control_plane.endpoints.replicas import is_serving

__all__ = ["record_io"]

log = structlog.get_logger("control_plane.endpoints")


async def _describe(http_url: str, model: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://{http_url}", timeout=5.0) as client:
        metadata = (await client.get(f"/v2/models/{model}")).raise_for_status().json()
        config = (await client.get(f"/v2/models/{model}/config")).raise_for_status().json()
    policy = config.get("model_transaction_policy") or {}
    return {
        "inputs": metadata.get("inputs", []),
        "outputs": metadata.get("outputs", []),
        "platform": metadata.get("platform") or config.get("backend"),
        "max_batch_size": config.get("max_batch_size", 0),
        "decoupled": bool(policy.get("decoupled", False)),
    }


async def record_io(sessionmaker: async_sessionmaker[AsyncSession], routes: RouteTable) -> int:
    """Fill in the inputs and outputs of served versions that have none yet; returns how
    many were recorded (a version without a ready replica waits for the next call). Triton
    is asked between two transactions, never inside one."""
    async with sessionmaker() as db:
        endpoints = {e.id: e for e in await repository.live_endpoints(db)}
        wanted = [
            (v.id, endpoints[v.endpoint_id].org_id, endpoints[v.endpoint_id].name, v.served_model)
            for v in await repository.versions_of(db, list(endpoints))
            if not v.io and is_serving(v)
        ]
    found: dict[str, dict[str, Any]] = {}
    for version_id, org_id, name, served in wanted:
        route = await routes.get(org_id, name)
        if route is None or not route.upstreams:
            continue
        try:
            found[version_id] = await _describe(route.upstreams[0].http_url, served)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("model metadata unavailable", version=version_id, error=str(exc))
    if found:
        async with sessionmaker() as db:
            await repository.set_io(db, found)
            await db.commit()
    return len(found)
