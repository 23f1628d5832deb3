"""A client that goes away mid-stream, over a real socket (uvicorn): generation stops and
the key is billed for what was generated until then, no more."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.app import create_app
from control_plane.endpoints.gateway.text import model_text
from control_plane.endpoints.modelrepo.tiny import write_tiny_model
from control_plane.endpoints.triton.driver import stop_all
from control_plane.endpoints.triton.server import triton_available
from control_plane.identity.roles import TenantRole
from control_plane.metering.service import usage_total
from control_plane.settings import Settings
from tests.conftest import need_peer
from tests.e2e.server import serve_app
from tests.fixtures.factories import Tenant, bearer, make_api_key
from tests.integration.endpoints.conftest import REGION, endpoints_url

pytestmark = [pytest.mark.peer_triton, pytest.mark.slow]

MAX_TOKENS = 400  # at 20 ms a token: 8 s, far longer than the test reads


@pytest.fixture
def inference_driver() -> str:
    need_peer(triton_available())
    return "triton-local"


async def _wait_ready(http: httpx.AsyncClient, url: str, key: str) -> None:
    for _ in range(600):
        state = (await http.get(url, headers=bearer(key))).json()["state"]
        if state == "ready":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"endpoint not ready: {state}")


async def test_disconnect_mid_stream_bills_what_was_generated(
    settings: Settings, db: AsyncSession, org: Tenant, fleet: list[str]
) -> None:
    key = await make_api_key(db, org, TenantRole.MEMBER)
    await db.commit()
    tiny = write_tiny_model(settings.model_store_root / REGION, "tiny-chat", token_delay_ms=20)
    served = settings.model_copy(
        update={
            "reconciler_enabled": True,
            "reconcile_interval_seconds": 0.2,
            "gateway_flush_seconds": 0.3,
        }
    )
    app = create_app(served, configure_logs=False)
    received: list[str] = []
    try:
        with serve_app(served, app=app) as base:
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                created = await http.post(
                    endpoints_url(org),
                    headers=bearer(key),
                    json={
                        "name": "chat",
                        "region": REGION,
                        "model_uri": tiny.as_uri(),
                        "gpu_model": "h100",
                        "gpu_milli": 250,
                    },
                )
                assert created.status_code == 201, created.text
                await _wait_ready(http, f"{endpoints_url(org)}/chat", key)
                body = {
                    "model": "chat",
                    "stream": True,
                    "max_tokens": MAX_TOKENS,
                    "messages": [{"role": "user", "content": "talk for a long time"}],
                }
                async with http.stream(
                    "POST", "/v1/chat/completions", json=body, headers=bearer(key)
                ) as stream:
                    async for line in stream.aiter_lines():
                        if line.startswith("data: {"):
                            delta = json.loads(line[6:])["choices"][0]["delta"]
                            received.append(delta.get("content", ""))
                        if len(received) >= 6:
                            break  # hang up mid-stream
                await asyncio.sleep(1.5)  # the gateway notices, stops, flushes usage
            billed = 0
            for _ in range(50):
                billed = int(await usage_total(db, org_id=org.org_id, type="tokens_out"))
                if billed:
                    break
                await asyncio.sleep(0.2)
            stats = app.state.gateway.stats.all()
    finally:
        stop_all(served.triton_dir)
    seen = model_text(tiny).count("".join(received))
    assert seen >= 5
    # Billed for what was generated before the hang-up was noticed: at least what the
    # client got, far less than the request allowed.
    assert seen <= billed < MAX_TOKENS // 2, (seen, billed)
    (endpoint_stats,) = stats.values()
    assert endpoint_stats.tokens_out == billed
    assert endpoint_stats.in_flight == 0
