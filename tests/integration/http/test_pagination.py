"""Cursor pagination: limits, cursors the API did not issue, and walking a whole list."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.http.pagination import encode_cursor
from control_plane.identity.models import Membership
from control_plane.identity.roles import TenantRole
from control_plane.ids import new_id
from tests.fixtures.factories import Tenant, login, make_org, make_project, make_user

Client = AsyncTestClient[Litestar]
PROJECTS = "/api/v1/projects"


@pytest.fixture
async def org(db: AsyncSession) -> Tenant:
    tenant = await make_org(db, roles=(TenantRole.OWNER,))
    await db.commit()
    return tenant


@pytest.fixture
async def signed_in(client: Client, org: Tenant) -> None:
    await login(client, org.accounts[TenantRole.OWNER])


def raw_cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()


async def walk(client: Client, url: str, limit: int) -> list[list[Any]]:
    """Every page of ``url``, following ``next_cursor`` until it is null."""
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=params)
        assert response.status_code == 200, response.text
        pages.append(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor does not advance"


@pytest.mark.usefixtures("signed_in")
class TestLimit:
    @pytest.mark.parametrize("limit", ["0", "201", "-1", "ten", "1.5"])
    async def test_a_limit_out_of_bounds_is_a_400_naming_it(
        self, client: Client, limit: str
    ) -> None:
        response = await client.get(PROJECTS, params={"limit": limit})

        assert response.status_code == 400
        problem = response.json()
        assert problem["type"] == "/problems/invalid-input"
        assert [e["field"] for e in problem["errors"]] == ["query.limit"]

    @pytest.mark.parametrize("limit", ["1", "200"])
    async def test_the_bounds_themselves_are_accepted(self, client: Client, limit: str) -> None:
        response = await client.get(PROJECTS, params={"limit": limit})

        assert response.status_code == 200
        assert len(response.json()["items"]) == 1

    async def test_without_a_limit_a_page_holds_the_default(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        for n in range(55):
            await make_project(db, org.org_id, f"bulk-{n:02d}")
        await db.commit()

        page = (await client.get(PROJECTS)).json()

        assert len(page["items"]) == 50
        assert page["next_cursor"] is not None


@pytest.mark.usefixtures("signed_in")
class TestCursor:
    @pytest.mark.parametrize(
        "cursor",
        [
            "not-a-cursor",
            "!!!",
            "%%%",
            raw_cursor({"before": "x"}),
            raw_cursor({"after": 5}),
            raw_cursor(["after"]),
            raw_cursor({"after": "x" * 201}),
            "x" * 401,
        ],
        ids=[
            "plain words",
            "punctuation",
            "percent",
            "wrong key",
            "number",
            "list",
            "too long inside",
            "too long",
        ],
    )
    async def test_a_cursor_the_api_did_not_issue_is_a_400_naming_it(
        self, client: Client, cursor: str
    ) -> None:
        response = await client.get(PROJECTS, params={"cursor": cursor})

        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == ["query.cursor"]

    async def test_a_cursor_past_the_end_gives_an_empty_last_page(self, client: Client) -> None:
        response = await client.get(PROJECTS, params={"cursor": encode_cursor("prj_~")})

        assert response.status_code == 200
        assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.usefixtures("signed_in")
class TestWalk:
    async def test_walking_pages_returns_every_project_once_in_order(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        made = [org.project_id] + [await make_project(db, org.org_id) for _ in range(6)]
        await db.commit()

        pages = await walk(client, PROJECTS, limit=3)

        assert [len(p) for p in pages] == [3, 3, 1]
        assert [p["id"] for page in pages for p in page] == sorted(made)

    async def test_an_exact_multiple_ends_without_an_empty_page(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        for _ in range(5):
            await make_project(db, org.org_id)
        await db.commit()

        pages = await walk(client, PROJECTS, limit=3)

        assert [len(p) for p in pages] == [3, 3]

    async def test_items_created_while_walking_appear_once_at_most(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        for _ in range(3):
            await make_project(db, org.org_id)
        await db.commit()
        first = (await client.get(PROJECTS, params={"limit": 2})).json()
        late = await make_project(db, org.org_id)  # sorts after everything seen so far
        await db.commit()

        rest = (
            await client.get(PROJECTS, params={"limit": 10, "cursor": first["next_cursor"]})
        ).json()

        seen = [p["id"] for p in first["items"] + rest["items"]]
        assert len(seen) == len(set(seen)) == 5
        assert seen[-1] == late

    async def test_walking_members_returns_each_member_once(
        self, client: Client, db: AsyncSession, org: Tenant
    ) -> None:
        for _ in range(6):
            user = await make_user(db)
            db.add(
                Membership(
                    id=new_id("mem"),
                    org_id=org.org_id,
                    user_id=user.user_id,
                    role=TenantRole.MEMBER,
                    created_at=datetime.now(UTC),
                )
            )
        await db.commit()

        pages = await walk(client, f"/api/v1/orgs/{org.org_id}/members", limit=4)

        user_ids = [m["user_id"] for page in pages for m in page]
        assert [len(p) for p in pages] == [4, 3]
        assert user_ids == sorted(set(user_ids))
