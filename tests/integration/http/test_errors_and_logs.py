"""Unexpected errors never leak internals; access logs are structured, carry the request
id and the caller's organization, and never contain secrets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.app import create_app
from control_plane.clock import OffsetClock
from control_plane.identity.authz import public
from control_plane.identity.roles import TenantRole
from control_plane.logging import configure_logging
from control_plane.settings import Settings
from tests.fixtures.factories import make_org

Client = AsyncTestClient[Litestar]


@get("/api/v1/test-only/explode", opt=public(), include_in_schema=False)
async def explode() -> None:
    raise RuntimeError("database password is hunter2")


@pytest.fixture
async def exploding_client(settings: Settings, clock: OffsetClock) -> AsyncIterator[Client]:
    app = create_app(settings, clock=clock, extra_route_handlers=[explode], configure_logs=False)
    async with AsyncTestClient(app=app, base_url="http://127.0.0.1") as client:
        yield client
    await app.state.engine.dispose()


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    """JSON logs written to the test's captured stderr (so it is set up after capsys)."""
    configure_logging("json", "INFO")
    yield
    configure_logging("console", "INFO")


class TestUnexpectedErrors:
    async def test_a_crash_is_a_500_problem_with_no_internals(
        self, exploding_client: Client
    ) -> None:
        response = await exploding_client.get("/api/v1/test-only/explode")

        assert response.status_code == 500
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["type"] == "/problems/internal-error"
        assert body["request_id"] == response.headers["x-request-id"]
        assert "hunter2" not in response.text
        assert "Traceback" not in response.text
        assert "RuntimeError" not in response.text


class TestAccessLogs:
    @pytest.mark.usefixtures("json_logs")
    async def test_each_request_logs_one_json_line_with_its_id_and_no_secrets(
        self, client: Client, db: AsyncSession, capsys: pytest.CaptureFixture[str]
    ) -> None:
        org = await make_org(db, roles=(TenantRole.OWNER,))
        await db.commit()
        owner = org.accounts[TenantRole.OWNER]
        capsys.readouterr()

        signed_in = await client.post(
            "/api/v1/auth/login", json={"email": owner.email, "password": owner.password}
        )
        listed = await client.get("/api/v1/projects")

        logged = capsys.readouterr().err
        lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
        requests = [line for line in lines if line.get("event") == "request"]
        by_id = {line["request_id"]: line for line in requests}
        assert by_id[signed_in.headers["x-request-id"]]["path"] == "/api/v1/auth/login"
        listing = by_id[listed.headers["x-request-id"]]
        assert listing["status"] == 200
        assert listing["org_id"] == org.org_id
        assert listing["principal"].startswith("user:")
        assert owner.password not in logged
        assert signed_in.json()["csrf_token"] not in logged
        assert client.cookies["cp_session"] not in logged
