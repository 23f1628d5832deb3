"""Health, errors as problem+json, request ids, OpenAPI."""

from __future__ import annotations

import pytest


class TestHealth:
    async def test_healthz_and_readyz_answer(self, client) -> None:
        assert (await client.get("/healthz")).json()["status"] == "ok"
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["database"] == "ok"


class TestProblems:
    async def test_unknown_route_is_problem_json_404(self, client) -> None:
        response = await client.get("/api/v1/nothing-here")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["type"] == "/problems/not-found"
        assert body["status"] == 404

    async def test_wrong_method_is_problem_json_405(self, client) -> None:
        response = await client.delete("/healthz")
        assert response.status_code == 405
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "GET" in response.headers.get("allow", "")

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (b"{not json", "body"),
            (b'{"email": 5, "password": "x"}', "body.email"),
            (b'{"email": "a@b.c", "password": "x", "admin": true}', "body.admin"),
            (b'{"email": "a@b.c"}', "body.password"),
            (b'{"email": "a\\u0000@b.c", "password": "x"}', "body.email"),
        ],
    )
    async def test_bad_input_names_the_field(self, client, body: bytes, field: str) -> None:
        response = await client.post(
            "/api/v1/auth/login", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
        problem = response.json()
        assert problem["type"] == "/problems/invalid-input"
        fields = [e["field"] for e in problem["errors"]]
        assert any(f.startswith(field) for f in fields), fields

    async def test_huge_body_is_413(self, client) -> None:
        response = await client.post(
            "/api/v1/auth/login",
            content=b'{"email": "' + b"a" * 2_000_000 + b'"}',
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["type"] == "/problems/payload-too-large"

    async def test_request_id_is_echoed_or_made(self, client) -> None:
        mine = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
        assert mine.headers["x-request-id"] == "abc-123"
        made = await client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
        assert made.headers["x-request-id"].startswith("req_")


class TestOpenApi:
    async def test_schema_lists_the_api(self, client) -> None:
        spec = (await client.get("/schema/openapi.json")).json()
        assert "/api/v1/projects" in spec["paths"]
        assert "/api/v1/nodes/import" in spec["paths"]


class TestMetrics:
    async def test_requests_are_counted_by_route_template(self, client) -> None:
        await client.get("/api/v1/projects/prj_does_not_exist")
        text = (await client.get("/metrics")).text
        assert 'route="/api/v1/projects/{project_id}"' in text
        assert "prj_does_not_exist" not in text  # raw paths never become labels
