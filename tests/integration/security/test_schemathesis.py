"""Property-based fuzzing of every API operation with schemathesis, against the OpenAPI document.

Every operation is fuzzed from the app's own ``/schema/openapi.json`` authenticated with the
victim owner's API key and anonymously; provider operations also with the operator-admin's
session (the owner key only ever gets 403 there). Each generated request, valid or not, must
get an answer that is not a server error and whose status code, content type and body the
document declares. Path parameters are mostly the victim's real ids (so handlers reach their
success paths) and sometimes the generated value (so unknown-id answers are checked too).

Bounded for CI: ``MAX_EXAMPLES`` cases per operation and caller, half valid and half invalid
input, derandomized so that a failure reproduces, no per-example deadline. The cases run
through ``hypothesis.given`` with each operation's schemathesis strategy rather than
``schemathesis.pytest.from_fixture``, whose test wrapper does not run under pytest 9; this
also names each test after its operation.

Nothing is excluded. Calls that would end the run or starve later operations are steered
instead (see ``fill_path``): deleting the owner key's own project would delete the key, so a
sibling project is targeted; member removal targets a member of its own; revocation is aimed
at another key than the one calling. ``POST /api/v1/auth/logout`` with an API key ends no
session, so it is fuzzed too. The operator run never logs out (no provider route does).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from litestar import Litestar
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from control_plane.app import create_app
from control_plane.clock import OffsetClock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.identity.authentication import SESSION_COOKIE
from control_plane.identity.models import Membership
from control_plane.identity.roles import TenantRole
from control_plane.ids import new_id
from control_plane.settings import Settings
from tests.fixtures.empty_db import empty_tables
from tests.fixtures.factories import bearer, make_api_key, make_project, make_user
from tests.integration.security.conftest import NODE_REGION, build_catalog, build_world
from tests.integration.security.test_route_isolation import EXPECTATIONS, OPERATIONS

MAX_EXAMPLES = 25


@schemathesis.check
def content_type_names_each_parameter_once(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """``text/plain; charset=utf-8; charset=utf-8`` is not a media type clients can trust."""
    for value in response.headers.get("content-type", []):
        names = [p.split("=", 1)[0].strip().lower() for p in value.split(";")[1:]]
        if len(names) != len(set(names)):
            raise AssertionError(f"Content-Type repeats a parameter: {value!r}")
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    content_type_names_each_parameter_once,
]
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
ANONYMOUS_EXAMPLES = 5
CALLERS = ("owner-api-key", "anonymous")
OPERATOR = "operator-admin"  # a session (with its CSRF token) on the provider routes


@dataclass
class FuzzTarget:
    app: Litestar
    schema: schemathesis.BaseSchema
    headers: dict[str, dict[str, str]]  # caller -> credential headers
    path_values: dict[str, str]  # path parameter name -> a real id of the victim
    sibling_project_id: str  # a project of the victim outside the owner key's project
    doomed_member_id: str  # the member the member-removal operation removes

    def prepare(self, case: schemathesis.Case[Any], caller: str) -> None:
        """Aim the case at the victim and keep the caller's credential the one sent."""
        if caller == OPERATOR:
            # Generated credentials (the spec declares both schemes) would replace the
            # session; the anonymous run keeps them, as garbage credentials to refuse.
            if case.headers:
                case.headers.pop("Authorization", None)
            if case.cookies:
                case.cookies.pop(SESSION_COOKIE, None)
        self.fill_path(case)

    def fill_path(self, case: schemathesis.Case[Any]) -> None:
        """Put the victim's real ids in the path, except in about one case in four."""
        params = case.path_parameters
        if not params:
            return
        generated = "/".join(f"{k}={v}" for k, v in sorted(params.items()))
        if zlib.crc32(generated.encode()) % 4 == 0:
            return  # keep the generated ids: the unknown-id answers are checked too
        for name in params:
            if name in self.path_values:
                params[name] = self.path_values[name]
        if case.method.upper() != "DELETE":
            return
        if case.path == "/api/v1/projects/{project_id}":
            # Deleting the key's own project would delete the key and end the run; a sibling
            # project is invisible to a project key, so this checks that refusal instead.
            params["project_id"] = self.sibling_project_id
        elif "user_id" in params and params["user_id"] == self.path_values["user_id"]:
            params["user_id"] = self.doomed_member_id  # the other member routes keep theirs


@pytest.fixture(scope="module")
async def fuzz_target(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FuzzTarget]:
    """The two-tenant world, an owner key of the victim, and an app fuzzed by every test here.

    The world is arranged through an engine of its own, closed before fuzzing: schemathesis
    drives the app from its own event-loop thread, where the app's connections must stay.
    """
    app_settings = Settings(
        database_url=database_url,
        key_dir=tmp_path_factory.mktemp("keys"),  # never the working copy's var/keys
        environment="test",
        cookie_secure=False,
        login_rate_per_minute=100_000,  # fuzzing signs in far more often than a person
        model_store_root=tmp_path_factory.mktemp("models"),
        triton_dir=tmp_path_factory.mktemp("triton"),
        autoscale_enabled=False,
    )
    clock = OffsetClock()
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            await build_catalog(db, clock)
            world = await build_world(db, clock, app_settings.model_store_root, app_settings)
            owner_secret = await make_api_key(db, world.victim, TenantRole.OWNER)
            sibling = await make_project(db, world.victim.org_id, "sibling")
            doomed = await make_user(db, f"doomed@{world.victim.slug}.test")
            db.add(
                Membership(
                    id=new_id("mem"),
                    org_id=world.victim.org_id,
                    user_id=doomed.user_id,
                    role=TenantRole.MEMBER,
                    created_at=clock.now(),
                )
            )
            await db.commit()
        app = create_app(app_settings, clock=clock, configure_logs=False)
        yield FuzzTarget(
            app=app,
            schema=schemathesis.openapi.from_asgi("/schema/openapi.json", app),
            headers={
                "owner-api-key": bearer(owner_secret),
                "anonymous": {},
                OPERATOR: {**world.callers[OPERATOR].headers, **world.callers[OPERATOR].csrf},
            },
            path_values={
                "org_id": world.victim.org_id,
                "project_id": world.victim.project_id,
                "user_id": world.second_member.user_id,
                "key_id": world.victim_key_id,
                "code": NODE_REGION,
                "node_id": world.node_id,
                "pool_id": world.pool_id,
                "window_id": world.pool_window_id,
            },
            sibling_project_id=sibling,
            doomed_member_id=doomed.user_id,
        )
        shutdown_lifespans()  # the app's shutdown (engine disposal) in schemathesis' loop
    finally:
        async with engine.begin() as conn:
            await empty_tables(conn)
        await engine.dispose()


def _runs() -> list[tuple[str, str]]:
    """(operation, caller) pairs: every operation twice, provider ones also as an operator."""
    runs = [(operation, caller) for operation in OPERATIONS for caller in CALLERS]
    runs += [(op, OPERATOR) for op in OPERATIONS if EXPECTATIONS[op][0].access == "provider"]
    return sorted(runs)


RUNS = _runs()


class TestSchemathesis:
    @pytest.mark.parametrize(
        ("operation", "caller"), RUNS, ids=[f"{op} as {caller}" for op, caller in RUNS]
    )
    def test_every_answer_is_documented_and_no_server_error(
        self, operation: str, caller: str, fuzz_target: FuzzTarget
    ) -> None:
        method, path = operation.split(" ", 1)
        api_operation = fuzz_target.schema[path][method]
        strategy = api_operation.as_strategy(GenerationMode.POSITIVE) | api_operation.as_strategy(
            GenerationMode.NEGATIVE
        )
        headers = fuzz_target.headers[caller]
        examples = MAX_EXAMPLES
        if caller == "anonymous" and EXPECTATIONS[operation][0].access != "public":
            examples = ANONYMOUS_EXAMPLES  # refused before any input is read

        @settings(FUZZ_SETTINGS, max_examples=examples)
        @given(case=strategy)
        def fuzz(case: schemathesis.Case[Any]) -> None:
            fuzz_target.prepare(case, caller)
            case.call_and_validate(headers=headers, checks=CHECKS)

        fuzz()
