"""The gateway's routes are served outside Litestar's router (gateway.asgi); what a caller
sees of HTTP is unchanged: problem+json naming the field and the reason, request ids,
security headers, the body size limit, method refusals, session cookies with their CSRF
token, Idempotency-Key, the access metrics; every other path still reaches Litestar."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from tests.fixtures.factories import Tenant, bearer, make_api_key
from tests.integration.endpoints.conftest import Client, create_endpoint, fake_model

MAX_BODY = 4096


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_body_bytes": MAX_BODY})


@pytest.fixture
async def key(client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
              settings: Settings, db: AsyncSession) -> str:  # fmt: skip
    """A member's API key, with an endpoint ``chat`` (simulated replicas) to call."""
    created = await create_endpoint(client, org, auth, model_uri=fake_model(settings, "tiny"))
    assert created.status_code == 201, created.text
    secret = await make_api_key(db, org, TenantRole.MEMBER)
    await db.commit()
    client.cookies.clear()
    return secret


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


class TestProblems:
    async def test_an_invalid_field_is_named_with_its_reason(
        self, client: Client, key: str
    ) -> None:
        bad = await client.post(
            "/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": 3, "content": "hi"}]},
            headers=bearer(key),
        )
        body = _problem(bad, 400)
        assert body["type"] == "/problems/invalid-input"
        assert body["instance"] == "/v1/chat/completions"
        assert body["errors"] == [
            {"field": "body.messages[0].role", "reason": "Expected `str`, got `int`"}
        ]

    @pytest.mark.parametrize(
        ("body", "field", "reason"),
        [
            ({"model": "chat"}, "body.prompt", "Object missing required field `prompt`"),
            ({"model": "chat", "prompt": "x", "max_tokens": 0}, "body.max_tokens",
             "Expected `int` >= 1"),
            ({"model": "chat", "prompt": ["x"]}, "body.prompt", "Expected `str`, got `array`"),
        ],
    )  # fmt: skip
    async def test_completion_fields(
        self, client: Client, key: str, body: dict[str, Any], field: str, reason: str
    ) -> None:
        bad = await client.post("/v1/completions", json=body, headers=bearer(key))
        assert _problem(bad, 400)["errors"] == [{"field": field, "reason": reason}]

    async def test_a_body_that_is_not_json(self, client: Client, key: str) -> None:
        bad = await client.post(
            "/v1/completions",
            content=b"{nope",
            headers={**bearer(key), "content-type": "application/json"},
        )
        body = _problem(bad, 400)
        assert body["detail"] == "The request body could not be read."
        assert body["errors"][0]["field"] == "body"
        assert body["errors"][0]["reason"].startswith("JSON is malformed")

    async def test_numbers_sent_as_strings_are_read_as_before(
        self, client: Client, key: str
    ) -> None:
        bad = await client.post(
            "/v1/completions",
            json={"model": "chat", "prompt": "x", "max_tokens": "0"},
            headers=bearer(key),
        )
        assert _problem(bad, 400)["errors"][0]["field"] == "body.max_tokens"

    async def test_an_unknown_model_is_a_404_with_its_code(self, client: Client, key: str) -> None:
        missing = await client.post(
            "/v2/models/nope/infer",
            json={"inputs": [{"name": "text_input", "datatype": "BYTES", "data": ["x"]}]},
            headers=bearer(key),
        )
        body = _problem(missing, 404)
        assert body["error"] == {"code": "model_not_found"}
        assert body["instance"] == "/v2/models/nope/infer"


class TestHttp:
    async def test_request_ids_and_security_headers(self, client: Client, key: str) -> None:
        mine = await client.get("/v1/models", headers={**bearer(key), "X-Request-Id": "abc-1"})
        assert mine.status_code == 200
        assert mine.headers["x-request-id"] == "abc-1"
        assert mine.headers["x-content-type-options"] == "nosniff"
        assert mine.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in mine.headers["content-security-policy"]
        unsafe = await client.get("/v1/models", headers={**bearer(key), "X-Request-Id": "a b"})
        assert unsafe.headers["x-request-id"].startswith("req_")

    async def test_a_body_over_the_limit_is_413_after_authentication(
        self, client: Client, key: str
    ) -> None:
        big = {"model": "chat", "prompt": "x" * MAX_BODY}
        anonymous = await client.post("/v1/completions", json=big)
        assert _problem(anonymous, 401)["type"] == "/problems/unauthenticated"
        too_large = await client.post("/v1/completions", json=big, headers=bearer(key))
        assert _problem(too_large, 413)["type"] == "/problems/payload-too-large"

    async def test_another_method_is_refused_with_the_allowed_one(
        self, client: Client, key: str
    ) -> None:
        refused = await client.get("/v1/chat/completions", headers=bearer(key))
        _problem(refused, 405)
        assert refused.headers["allow"] == "POST"

    async def test_a_trailing_slash_reaches_the_same_route(self, client: Client, key: str) -> None:
        assert (await client.get("/v1/models/", headers=bearer(key))).status_code == 200

    async def test_other_paths_are_litestars(self, client: Client, key: str) -> None:
        missing = await client.get("/v1/other", headers=bearer(key))
        assert missing.status_code == 404
        assert missing.json()["type"] == "/problems/not-found"
        assert (await client.get("/v2/health/ready")).json() == {"ready": True}
        assert (await client.get("/healthz")).status_code == 200

    async def test_a_session_cookie_needs_its_csrf_token_to_call(
        self, client: Client, key: str, org: Tenant
    ) -> None:
        from tests.fixtures.factories import login

        csrf = await login(client, org.accounts[TenantRole.MEMBER])
        call = {"model": "nope", "prompt": "x"}
        assert (await client.get("/v1/models")).status_code == 200
        without = await client.post("/v1/completions", json=call)
        assert "CSRF" in _problem(without, 403)["detail"]
        with_token = await client.post("/v1/completions", json=call, headers=csrf)
        _problem(with_token, 404)  # past the check: no such model

    async def test_a_forms_csrf_field_is_read_as_before(
        self, client: Client, key: str, org: Tenant
    ) -> None:
        """The access check reads a form's ``_csrf`` field, then the route finds no JSON."""
        from tests.fixtures.factories import login

        csrf = await login(client, org.accounts[TenantRole.MEMBER])
        form = {"content-type": "application/x-www-form-urlencoded"}
        token = csrf["X-CSRF-Token"]
        passed = await client.post("/v1/completions", content=f"_csrf={token}", headers=form)
        assert _problem(passed, 400)["errors"][0]["field"] == "body"
        wrong = await client.post("/v1/completions", content="_csrf=nope", headers=form)
        _problem(wrong, 403)

    async def test_an_idempotency_key_reused_with_another_body_is_refused(
        self, client: Client, key: str
    ) -> None:
        headers = {**bearer(key), "Idempotency-Key": "retry-1"}
        first = await client.post(
            "/v1/completions", json={"model": "a", "prompt": "x"}, headers=headers
        )
        assert first.status_code == 404
        other = await client.post(
            "/v1/completions", json={"model": "b", "prompt": "x"}, headers=headers
        )
        assert other.status_code == 422
        assert other.json()["errors"][0]["field"] == "header.Idempotency-Key"

    async def test_access_metrics_name_the_route_template(self, client: Client, key: str) -> None:
        await client.get("/v2/models/nope", headers=bearer(key))
        scraped = (await client.get("/metrics")).text
        assert 'cp_http_requests_total{method="GET",route="/v2/models/{name}",status="404"}' in (
            scraped
        )
