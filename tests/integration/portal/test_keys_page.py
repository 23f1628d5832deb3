"""The Keys & secrets page: data keys and secrets of the current organization, forms for
those who may write, and secret values that never come back to the browser."""

from __future__ import annotations

import html
import re

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from control_plane.sovereignty.keys import service
from tests.fixtures.factories import Tenant, login, make_org

Client = AsyncTestClient[Litestar]
HTML = {"Accept": "text/html"}
VALUE = "repo-token-6f1d0c9a7b3e"


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def table_rows(page: str, caption: str) -> list[str]:
    match = re.search(rf"<caption[^>]*>{re.escape(caption)}</caption>(.*?)</table>", page, re.S)
    assert match, f"no table {caption!r}"
    return [
        text_of(row)
        for row in re.findall(r"<tbody>(.*?)</tbody>", match.group(1), re.S)[0].split("</tr>")
        if text_of(row)
    ]


@pytest.fixture
async def org(db: AsyncSession) -> Tenant:
    tenant = await make_org(db)
    await db.commit()
    return tenant


async def sign_in(client: Client, org: Tenant, role: TenantRole) -> str:
    return (await login(client, org.accounts[role]))["X-CSRF-Token"]


class TestKeysPage:
    async def test_an_owner_adds_a_secret_sees_it_listed_and_never_sees_its_value(
        self, client: Client, org: Tenant, settings: Settings
    ) -> None:
        csrf = await sign_in(client, org, TenantRole.OWNER)

        saved = await client.post(
            "/keys/secrets",
            data={
                "_csrf": csrf,
                "name": "hf-token",
                "kind": "model_repository_credentials",
                "value": VALUE,
                "description": "pull weights",
            },
            headers=HTML,
            follow_redirects=False,
        )
        assert saved.status_code == 303
        page = await client.get(saved.headers["location"], headers=HTML)

        assert page.status_code == 200
        assert "The secret hf-token was saved" in text_of(page.text)
        assert VALUE not in page.text
        [secret] = table_rows(page.text, "Secrets (values are never shown)")
        assert "hf-token" in secret
        assert "Model repository credentials" in secret
        assert f"v1 · {settings.region}" in secret
        [key] = table_rows(page.text, "Data key versions, newest first")
        assert key.startswith(f"v1 {settings.region} Active file:{settings.region} v1")
        assert 'href="/keys" aria-current="page"' in page.text

    async def test_rotating_from_the_page_adds_a_version(self, client: Client, org: Tenant) -> None:
        csrf = await sign_in(client, org, TenantRole.ADMIN)

        for _ in range(2):
            rotated = await client.post(
                "/keys/rotate", data={"_csrf": csrf}, headers=HTML, follow_redirects=False
            )
            assert rotated.status_code == 303
        page = await client.get("/keys?done=rotated", headers=HTML)

        rows = table_rows(page.text, "Data key versions, newest first")
        assert [row.split()[0:3] for row in rows] == [
            ["v2", "ca-qc-1", "Active"],
            ["v1", "ca-qc-1", "Retired"],
        ]
        assert "A new data key version was made" in text_of(page.text)

    async def test_a_form_error_is_shown_next_to_the_field_without_echoing_the_value(
        self, client: Client, org: Tenant
    ) -> None:
        csrf = await sign_in(client, org, TenantRole.OWNER)

        page = await client.post(
            "/keys/secrets",
            data={"_csrf": csrf, "name": "bad name!", "kind": "other", "value": VALUE},
            headers=HTML,
        )

        assert page.status_code == 400
        assert 'id="secret-name-error"' in page.text
        assert VALUE not in page.text

    async def test_replacing_and_deleting_from_the_page(
        self, client: Client, org: Tenant, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        csrf = await sign_in(client, org, TenantRole.OWNER)
        form = {"_csrf": csrf, "name": "tok", "kind": "other"}
        await client.post("/keys/secrets", data={**form, "value": "one"}, headers=HTML)
        await client.post("/keys/secrets", data={**form, "value": "two"}, headers=HTML)
        found = await service.find(db, org_id=org.org_id, name="tok", settings=settings)
        assert found is not None
        value = await service.reveal(
            db,
            org_id=org.org_id,
            secret_id=found.id,
            justification="portal test",
            actor=service.Actor.system("tests"),
            clock=clock,
            settings=settings,
        )
        await db.commit()
        assert value == b"two"

        replacing = await client.get(f"/keys?replace={found.id}", headers=HTML)
        assert "Replace the value of tok" in text_of(replacing.text)
        assert 'name="name" value="tok"' in replacing.text

        deleted = await client.post(
            "/keys/secrets/delete",
            data={"_csrf": csrf, "secret_id": found.id},
            headers=HTML,
            follow_redirects=False,
        )
        again = await client.post(
            "/keys/secrets/delete",
            data={"_csrf": csrf, "secret_id": found.id},
            headers=HTML,
            follow_redirects=False,
        )

        assert deleted.headers["location"] == "/keys?done=deleted"
        assert again.headers["location"] == "/keys?done=gone"
        page = await client.get("/keys", headers=HTML)
        assert "No secrets yet." in text_of(page.text)

    async def test_members_read_without_forms_and_billing_is_refused(
        self, client: Client, org: Tenant
    ) -> None:
        await sign_in(client, org, TenantRole.MEMBER)
        member_page = await client.get("/keys", headers=HTML)
        client.cookies.clear()
        await sign_in(client, org, TenantRole.BILLING)
        billing_page = await client.get("/keys", headers=HTML)

        assert member_page.status_code == 200
        assert "Add a secret" not in member_page.text
        assert "Rotate data key" not in member_page.text
        assert billing_page.status_code == 403
