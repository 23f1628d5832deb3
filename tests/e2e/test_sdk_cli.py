"""The Python SDK and the ``cpctl`` client commands against a real uvicorn server."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from litestar import Litestar
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.cli.main import cli
from control_plane.clock import OffsetClock
from control_plane.identity.models import Project
from control_plane.identity.roles import TenantRole
from control_plane.sdk import (
    ApiConnectionError,
    AuthenticationError,
    Client,
    ConflictError,
    FieldError,
    NotFoundError,
    PermissionDeniedError,
    ServerError,
    ValidationError,
)
from control_plane.seed.demo import seed_demo
from control_plane.settings import Settings
from tests.e2e.server import serve_app
from tests.fixtures.factories import Tenant, make_api_key, make_org, make_project

pytestmark = pytest.mark.e2e

OPS_ADMIN = ("ops-admin@provider.example", "demo-opsadmin-pass")
NODE_CSV_HEADER = (
    "hostname,region,site,rack,bmc_endpoint,gpu_model,gpu_count,"
    "firmware_version,driver_version,gpu_uuids\n"
)


@pytest.fixture
def base_url(settings: Settings, clock: OffsetClock, app: Litestar) -> Iterator[str]:
    """The app served for real; ``app`` (unused by the server) empties the tables after."""
    with serve_app(settings, clock=clock) as url:
        yield url


@pytest.fixture
async def tenant(db: AsyncSession) -> Tenant:
    made = await make_org(db, "acme")
    await db.commit()
    return made


def owner_client(base_url: str, tenant: Tenant, **options: Any) -> Client:
    client = Client(base_url, **options)
    account = tenant.accounts[TenantRole.OWNER]
    client.login(account.email, account.password)
    return client


class Recorder(httpx.BaseTransport):
    """Passes requests to the real server, keeping each request and response it saw.

    ``intercept(request, None)`` runs before the server sees the request and may answer in
    its place (return a response); ``intercept(request, response)`` runs after the server
    answered and may simulate losing that answer (raise).
    """

    def __init__(
        self,
        intercept: Callable[[httpx.Request, httpx.Response | None], httpx.Response | None]
        | None = None,
    ) -> None:
        self._inner = httpx.HTTPTransport()
        self._intercept = intercept
        self.requests: list[httpx.Request] = []
        self.responses: list[httpx.Response] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self._intercept is not None:
            early = self._intercept(request, None)
            if early is not None:
                return early
        response = self._inner.handle_request(request)
        response.read()
        self.responses.append(response)
        if self._intercept is not None:
            self._intercept(request, response)
        return response

    def close(self) -> None:
        self._inner.close()

    def paths(self, method: str = "GET") -> list[str]:
        return [r.url.path for r in self.requests if r.method == method]


class TestSdkRoundTrips:
    async def test_owner_manages_org_projects_members_and_keys(
        self, base_url: str, tenant: Tenant
    ) -> None:
        with owner_client(base_url, tenant) as client:
            assert client.me().user is not None
            org = client.orgs.get(tenant.org_id)
            assert [o.slug for o in client.orgs.list()] == ["acme"]
            assert client.orgs.update(org.id, name="Acme Research").name == "Acme Research"

            project = client.projects.create("vision", "Vision", description="CV models")
            assert client.projects.get(project.id).description == "CV models"
            assert client.projects.update(project.id, name="Vision 2").name == "Vision 2"
            assert {p.slug for p in client.projects.list()} == {"default", "vision"}

            members = client.orgs.members(org.id)
            added = members.add("new.hire@acme.test", "member", name="New Hire")
            assert members.update(added.user_id, role="auditor").role == TenantRole.AUDITOR
            members.remove(added.user_id)
            assert "new.hire@acme.test" not in {m.email for m in members.list()}

            created = client.api_keys.create(project.id, "ci", role="member", expires_in_days=7)
            assert created.secret.startswith(created.api_key.prefix)
            assert [k.id for k in client.api_keys.list(project.id)] == [created.api_key.id]
            with Client(base_url, created.secret) as as_key:
                assert as_key.me().project_id == project.id
            assert client.api_keys.revoke(created.api_key.id).revoked_at is not None
            assert client.api_keys.get(created.api_key.id).revoked_at is not None
            with Client(base_url, created.secret) as as_key, pytest.raises(AuthenticationError):
                as_key.me()

            client.projects.delete(project.id)
            with pytest.raises(NotFoundError):
                client.projects.get(project.id)

    async def test_api_key_client_sees_only_its_own_project(
        self, base_url: str, db: AsyncSession, tenant: Tenant
    ) -> None:
        await make_project(db, tenant.org_id, "other")
        secret = await make_api_key(db, tenant)
        await db.commit()
        with Client(base_url, secret) as client:
            me = client.me()
            assert (me.kind, me.project_id) == ("api_key", tenant.project_id)
            assert [p.id for p in client.projects.list()] == [tenant.project_id]

    async def test_operator_reads_catalog_and_moves_a_node(
        self, base_url: str, db: AsyncSession, clock: OffsetClock
    ) -> None:
        await seed_demo(db, clock)
        await db.commit()
        with Client(base_url) as client:
            client.login(*OPS_ADMIN)
            assert {r.code for r in client.regions.list()} >= {"ca-qc-1", "se-north-1"}
            assert client.regions.get("ca-qc-1").jurisdiction == "CA"
            assert "h100" in {m.code for m in client.gpu_models.list()}
            assert client.nodes.summary().total_nodes == 42
            node = next(client.nodes.list(hostname="qc-h100-01"))
            moved = client.nodes.transition(node.id, "draining", "rack 4 power work")
            assert moved.state == "draining"
            assert client.nodes.get(node.id).state == "draining"
            reasons = [e.reason for e in client.nodes.events(node.id)]
            assert "rack 4 power work" in reasons
            client.logout()
            with pytest.raises(AuthenticationError):
                client.nodes.summary()


class TestPagination:
    async def test_list_follows_cursors_lazily_across_pages(
        self, base_url: str, db: AsyncSession, tenant: Tenant
    ) -> None:
        for n in range(120):
            await make_project(db, tenant.org_id, f"bulk-{n:03d}")
        await db.commit()
        recorder = Recorder()
        with owner_client(base_url, tenant, transport=recorder) as client:
            projects = client.projects.list(page_size=50)
            assert recorder.paths() == []  # nothing fetched until asked
            first = next(projects)
            assert len(recorder.paths()) == 1
            rest = list(projects)
            ids = [first.id, *(p.id for p in rest)]
            assert len(ids) == 121
            assert len(set(ids)) == 121
            assert recorder.paths() == ["/api/v1/projects"] * 3
            sizes = [len(page.items) for page in client.projects.list(page_size=50).pages()]
            assert sizes == [50, 50, 21]
            assert len(client.projects.list(page_size=50).to_list(limit=60)) == 60


class TestRetries:
    async def test_lost_response_is_retried_with_the_same_key_and_creates_once(
        self, base_url: str, db: AsyncSession, tenant: Tenant
    ) -> None:
        def drop_first_create(request: httpx.Request, response: httpx.Response | None) -> None:
            creates = [r for r in recorder.requests if r.url.path == "/api/v1/projects"]
            if response is not None and creates == [request]:
                raise httpx.ReadError("connection reset after the server answered")

        recorder = Recorder(drop_first_create)
        with owner_client(base_url, tenant, transport=recorder, backoff_factor=0.01) as client:
            project = client.projects.create("exactly-once", "Exactly once")

        creates = [r for r in recorder.requests if r.url.path == "/api/v1/projects"]
        keys = {r.headers["idempotency-key"] for r in creates}
        assert len(creates) == 2
        assert len(keys) == 1
        assert recorder.responses[-1].headers.get("idempotent-replayed") == "true"
        count = await db.scalar(
            select(func.count()).select_from(Project).where(Project.slug == "exactly-once")
        )
        assert count == 1
        assert project.slug == "exactly-once"

    async def test_unavailable_answer_is_retried_after_the_retry_after_delay(
        self, base_url: str, tenant: Tenant
    ) -> None:
        def unavailable_once(
            request: httpx.Request, response: httpx.Response | None
        ) -> httpx.Response | None:
            first = not any(r.status_code == 503 for r in recorder.responses)
            if response is None and request.url.path == "/api/v1/projects" and first:
                answer = httpx.Response(503, headers={"Retry-After": "2"}, request=request)
                recorder.responses.append(answer)
                return answer
            return None

        recorder = Recorder(unavailable_once)
        slept: list[float] = []
        with owner_client(base_url, tenant, transport=recorder, sleep=slept.append) as client:
            assert [p.slug for p in client.projects.list()] == ["default"]
        assert slept == [2.0]

    async def test_sign_in_is_not_replayed_when_its_answer_is_lost(self, base_url: str) -> None:
        def drop_every_answer(request: httpx.Request, response: httpx.Response | None) -> None:
            if response is not None:
                raise httpx.ReadError("connection reset")

        recorder = Recorder(drop_every_answer)
        client = Client(base_url, transport=recorder, sleep=lambda _: None)
        with client, pytest.raises(ApiConnectionError):
            client.login("nobody@example.test", "irrelevant")
        assert len(recorder.requests) == 1

    async def test_persistent_server_failure_gives_up_after_max_retries(
        self, base_url: str, tenant: Tenant
    ) -> None:
        def always_502(
            request: httpx.Request, response: httpx.Response | None
        ) -> httpx.Response | None:
            if response is None and request.url.path == "/api/v1/regions":
                return httpx.Response(502, text="bad gateway", request=request)
            return None

        recorder = Recorder(always_502)
        with (
            owner_client(
                base_url, tenant, transport=recorder, max_retries=2, sleep=lambda _: None
            ) as client,
            pytest.raises(ServerError) as raised,
        ):
            client.regions.list().to_list()
        assert raised.value.status == 502
        assert raised.value.detail == "bad gateway"
        assert recorder.paths().count("/api/v1/regions") == 3


class TestProblemMapping:
    async def test_invalid_input_names_each_field(self, base_url: str, tenant: Tenant) -> None:
        with owner_client(base_url, tenant) as client, pytest.raises(ValidationError) as raised:
            client.projects.create("Not A Slug", "x")
        problem = raised.value
        assert (problem.status, problem.type) == (400, "/problems/invalid-input")
        assert [e.field for e in problem.errors] == ["body.slug"]
        assert isinstance(problem.errors[0], FieldError)
        assert problem.request_id

    async def test_taken_slug_is_a_conflict_naming_the_field(
        self, base_url: str, tenant: Tenant
    ) -> None:
        with owner_client(base_url, tenant) as client, pytest.raises(ConflictError) as raised:
            client.projects.create("default", "Again")
        assert raised.value.status == 409
        assert raised.value.errors == [FieldError("body.slug", "already taken")]

    async def test_missing_resource_and_bad_credential_and_denied_role(
        self, base_url: str, tenant: Tenant
    ) -> None:
        with owner_client(base_url, tenant) as client, pytest.raises(NotFoundError):
            client.projects.get("prj_doesnotexist")
        with (
            Client(base_url, "cpk_000000000000_nope") as client,
            pytest.raises(AuthenticationError) as unauthenticated,
        ):
            client.me()
        assert unauthenticated.value.status == 401
        auditor = tenant.accounts[TenantRole.AUDITOR]
        with Client(base_url) as client:
            client.login(auditor.email, auditor.password)
            with pytest.raises(PermissionDeniedError) as denied:
                client.projects.create("nope", "Nope")
        assert denied.value.status == 403


# ---------------------------------------------------------------- cpctl


class Cpctl:
    """Runs ``cpctl`` in-process with a private profiles file and no inherited CP_ vars."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.runner = CliRunner(
            env={
                "CPCTL_CONFIG": str(config),
                "CPCTL_PROFILE": None,
                "CP_URL": None,
                "CP_API_KEY": None,
            }
        )

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        return self.runner.invoke(cli, list(args), input=input, env=env or None)

    def json(self, *args: str) -> Any:
        result = self(*args, "--output", "json")
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    def profiles_text(self) -> str:
        return self.config.read_text()


@pytest.fixture
def cpctl(tmp_path: Path) -> Cpctl:
    return Cpctl(tmp_path / "cfg" / "profiles.toml")


def private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


class TestCpctlProfiles:
    async def test_profile_keeps_the_key_private_and_never_prints_it(
        self, base_url: str, db: AsyncSession, tenant: Tenant, cpctl: Cpctl
    ) -> None:
        secret = await make_api_key(db, tenant)
        await db.commit()
        added = cpctl("profile", "add", "acme", "--url", base_url, "--api-key-stdin", input=secret)
        assert added.exit_code == 0, added.stderr
        assert private(cpctl.config)
        assert secret in cpctl.profiles_text()

        listing = cpctl("profile", "list")
        assert "acme" in listing.stdout
        assert secret not in listing.stdout + listing.stderr
        [row] = cpctl.json("profile", "list")
        assert (row["name"], row["url"], row["current"]) == ("acme", base_url, True)
        assert row["auth"] == f"api key {secret[:16]}"  # the lookup prefix, never the secret

        projects = cpctl.json("projects", "list")
        assert [p["slug"] for p in projects] == ["default"]

    async def test_environment_overrides_need_no_profile(
        self, base_url: str, db: AsyncSession, tenant: Tenant, cpctl: Cpctl
    ) -> None:
        secret = await make_api_key(db, tenant)
        await db.commit()
        result = cpctl("projects", "list", CP_URL=base_url, CP_API_KEY=secret)
        assert result.exit_code == 0, result.stderr
        assert "default" in result.stdout
        assert not cpctl.config.exists()

    async def test_missing_profile_is_explained(self, cpctl: Cpctl) -> None:
        result = cpctl("--profile", "nope", "projects", "list")
        assert result.exit_code == 1
        assert "cpctl profile add nope" in result.stderr


class TestCpctlTenantCommands:
    async def test_api_key_is_created_shown_once_and_revoked(
        self, base_url: str, db: AsyncSession, tenant: Tenant, cpctl: Cpctl
    ) -> None:
        secret = await make_api_key(db, tenant)
        await db.commit()
        cpctl("profile", "add", "acme", "--url", base_url, "--api-key", secret)

        created = cpctl(
            "api-keys", "create", "default", "--name", "deploy", "--role", "member", "-o", "json"
        )
        assert created.exit_code == 0, created.stderr
        assert "shown only this once" in created.stderr
        new = json.loads(created.stdout)
        assert new["secret"].startswith(new["api_key"]["prefix"])
        listed = cpctl.json("api-keys", "list", tenant.project_id)
        assert new["api_key"]["id"] in {k["id"] for k in listed}

        revoked = cpctl("api-keys", "revoke", new["api_key"]["id"])
        assert revoked.exit_code == 0, revoked.stderr
        assert "revoked at" in revoked.stdout
        with Client(base_url, new["secret"]) as client, pytest.raises(AuthenticationError):
            client.me()

    async def test_refused_input_exits_2_with_field_errors_other_failures_exit_1(
        self, base_url: str, db: AsyncSession, tenant: Tenant, cpctl: Cpctl
    ) -> None:
        secret = await make_api_key(db, tenant)
        await db.commit()
        cpctl("profile", "add", "acme", "--url", base_url, "--api-key", secret)

        invalid = cpctl("projects", "create", "Bad Slug", "--name", "x")
        assert invalid.exit_code == 2
        assert "body.slug" in invalid.stderr
        assert "request id" in invalid.stderr

        missing = cpctl("projects", "get", "prj_doesnotexist")
        assert missing.exit_code == 1
        assert "404" in missing.stderr


class TestCpctlOperator:
    async def test_operator_signs_in_drains_a_node_and_imports_nodes(
        self, base_url: str, db: AsyncSession, clock: OffsetClock, cpctl: Cpctl, tmp_path: Path
    ) -> None:
        await seed_demo(db, clock)
        await db.commit()
        assert cpctl("profile", "add", "ops", "--url", base_url).exit_code == 0
        login = cpctl("login", "--email", OPS_ADMIN[0], "--password-stdin", input=OPS_ADMIN[1])
        assert login.exit_code == 0, login.stderr
        assert "operator-admin" in login.stdout
        assert private(cpctl.config)
        assert "session_token" in cpctl.profiles_text()

        drained = cpctl("nodes", "drain", "qc-h100-01", "--reason", "PDU swap")
        assert drained.exit_code == 0, drained.stderr
        assert drained.stdout.strip() == "qc-h100-01: draining"
        assert cpctl.json("nodes", "get", "qc-h100-01")["state"] == "draining"

        bad = tmp_path / "new-nodes.csv"
        bad.write_text(
            NODE_CSV_HEADER + _csv_row("qc-new-01", "8", 8) + _csv_row("qc-new-02", "eight", 8)
        )
        refused = cpctl("nodes", "import", str(bad))
        assert refused.exit_code == 2
        assert "row 3: gpu_count" in refused.stderr
        assert cpctl.json("nodes", "list", "--hostname", "qc-new") == []

        good = tmp_path / "good.csv"
        good.write_text(NODE_CSV_HEADER + _csv_row("qc-new-01", "8", 8))
        checked = cpctl("nodes", "import", str(good), "--dry-run")
        assert checked.exit_code == 0, checked.stderr
        assert "would be enrolled" in checked.stdout
        assert cpctl("nodes", "import", str(good)).exit_code == 0
        assert [n["hostname"] for n in cpctl.json("nodes", "list", "--hostname", "qc-new")] == [
            "qc-new-01"
        ]

        assert cpctl("logout").exit_code == 0
        assert "session_token" not in cpctl.profiles_text()
        after = cpctl("nodes", "summary")
        assert after.exit_code == 1


def _csv_row(hostname: str, count: str, n: int) -> str:
    gpus = ";".join(f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{hostname}/{i}')}" for i in range(n))
    return (
        f"{hostname},ca-qc-1,qc-mtl-1,r9,https://bmc-{hostname}.example,h100,{count},"
        f"1.0,550.54,{gpus}\n"
    )
