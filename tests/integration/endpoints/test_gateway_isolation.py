"""Every gateway route, called with another organization's key, anonymously and with a key
lacking ``inference:invoke``: nobody learns about or reaches the victim's model. (The
portal and API isolation tables cover the other routes; the gateway's are data-plane
routes outside the OpenAPI document.)"""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.models import ApiKey
from control_plane.identity.roles import Permission, TenantRole
from control_plane.identity.secrets import split_api_key
from control_plane.settings import Settings
from tests.fixtures.factories import Tenant, bearer, make_api_key, make_org
from tests.integration.endpoints.conftest import Client, create_endpoint, fake_model

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
V2 = {"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]}
CALLS: list[tuple[str, str, Any]] = [
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/completions", {"model": "chat", "prompt": "hi"}),
    ("POST", "/v2/models/chat/infer", V2),
    ("GET", "/v2/models/chat", None),
]


@pytest.fixture
async def victim(
    client: Client, org: Tenant, auth: dict[str, str], fleet: list[str], settings: Settings
) -> Tenant:
    created = await create_endpoint(client, org, auth, model_uri=fake_model(settings, "tiny"))
    assert created.status_code == 201, created.text
    return org


async def _send(client: Client, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return await client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), CALLS, ids=[f"{m} {p}" for m, p, _ in CALLS])
async def test_another_organization_gets_404_and_anonymous_401(
    client: Client,
    victim: Tenant,
    db: AsyncSession,
    app: Litestar,
    method: str,
    path: str,
    body: Any,
) -> None:
    attacker = await make_org(db, roles=(TenantRole.OWNER,))
    stranger = await make_api_key(db, attacker, TenantRole.OWNER)
    no_invoke = await make_api_key(
        db, victim, TenantRole.MEMBER, scopes=[Permission.ENDPOINTS_READ.value]
    )
    await db.commit()
    client.cookies.clear()
    outsider = await _send(client, method, path, body, bearer(stranger))
    assert outsider.status_code == 404, outsider.text
    assert victim.org_id not in outsider.text
    anonymous = await _send(client, method, path, body, {})
    assert anonymous.status_code == 401
    unscoped = await _send(client, method, path, body, bearer(no_invoke))
    assert unscoped.status_code == 403, unscoped.text


async def test_model_list_shows_only_the_callers_organization(
    client: Client, victim: Tenant, db: AsyncSession
) -> None:
    attacker = await make_org(db, roles=(TenantRole.OWNER,))
    stranger = await make_api_key(db, attacker, TenantRole.OWNER)
    own = await make_api_key(db, victim, TenantRole.MEMBER)
    await db.commit()
    client.cookies.clear()
    assert (await client.get("/v1/models", headers=bearer(stranger))).json()["data"] == []
    mine = (await client.get("/v1/models", headers=bearer(own))).json()["data"]
    assert [m["id"] for m in mine] == ["chat"]
    assert (await client.get("/v2/health/ready")).status_code == 200


async def test_a_revoked_key_stops_working_within_the_cache_time(
    client: Client, victim: Tenant, db: AsyncSession, clock: OffsetClock, settings: Settings
) -> None:
    """Keys are checked from a cache; a revocation reaches the gateway once the cached
    entry ages out (CP_API_KEY_CACHE_SECONDS, 2 s in the tests)."""
    secret = await make_api_key(db, victim, TenantRole.MEMBER)
    await db.commit()
    client.cookies.clear()
    assert (await client.get("/v1/models", headers=bearer(secret))).status_code == 200
    prefix = split_api_key(secret)
    await db.execute(update(ApiKey).where(ApiKey.prefix == prefix).values(revoked_at=clock.now()))
    await db.commit()
    clock.advance(settings.api_key_cache_seconds + 0.1)
    refused = await client.get("/v1/models", headers=bearer(secret))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
