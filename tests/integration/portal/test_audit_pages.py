"""The auditor's ledger page: integrity, activity chart, filters, paging and the download."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.bundle import verify_bundle
from control_plane.audit.checkpoints import take_checkpoint
from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.seed.demo import seed_catalog
from control_plane.settings import Settings
from tests.fixtures.factories import login, make_org
from tests.integration.portal.test_pages import HTML, text_of

Client = AsyncTestClient[Litestar]


async def _org_with_history(client: Client, db: AsyncSession, projects: int = 3) -> tuple[str, str]:
    await seed_catalog(db, OffsetClock())
    org = await make_org(db)
    await db.commit()
    owner = await login(client, org.accounts[TenantRole.OWNER])
    for n in range(projects):
        created = await client.post(
            "/api/v1/projects",
            json={"org_id": org.org_id, "slug": f"audited-{n}", "name": f"Audited {n}"},
            headers=owner,
        )
        assert created.status_code == 201, created.text
    client.cookies.clear()
    await login(client, org.accounts[TenantRole.AUDITOR])
    return org.org_id, org.slug


def _rows(page: str) -> list[str]:
    table = re.search(r'data-testid="audit-entries".*?<tbody>(.*?)</tbody>', page, re.S)
    assert table, "no entries table"
    return [text_of(row) for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)]


class TestLedgerPage:
    async def test_the_auditor_sees_an_intact_chain_and_the_changes(
        self, client: Client, db: AsyncSession
    ) -> None:
        await _org_with_history(client, db)

        page = await client.get("/audit", headers=HTML)

        assert page.status_code == 200
        status = text_of(re.search(r'data-testid="chain-status">(.*?)</p>', page.text, re.S)[1])
        assert status.startswith(("5 entries re-verified", "6 entries re-verified")), status
        rows = _rows(page.text)
        assert sum("identity.create_project" in r for r in rows) == 3
        assert "Ledger entries per day" in page.text

    async def test_filters_and_older_pages(self, client: Client, db: AsyncSession) -> None:
        await _org_with_history(client, db, projects=3)

        page = await client.get("/audit", params={"action": "identity.create"}, headers=HTML)
        rows = _rows(page.text)
        assert len(rows) == 3
        assert all("identity.create_project" in r for r in rows)

        first = await client.get("/audit", headers=HTML)
        assert "Older entries" not in first.text  # fewer than a page

    async def test_a_bad_date_names_the_field(self, client: Client, db: AsyncSession) -> None:
        await _org_with_history(client, db, projects=0)
        page = await client.get("/audit", params={"since": "yesterday"}, headers=HTML)
        assert page.status_code == 400
        assert "not a date" in page.text

    async def test_a_tampered_database_shows_a_broken_chain(
        self, client: Client, db: AsyncSession, settings: Settings, clock: OffsetClock
    ) -> None:
        org_id, _ = await _org_with_history(client, db, projects=2)
        if db.get_bind().dialect.name == "postgresql":
            # The table refuses UPDATE; an attacker with the owner's rights disables it first.
            await db.execute(
                text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_append_only")
            )
        await db.execute(
            text(
                "UPDATE audit_entry SET action = 'identity.nothing' WHERE org_id = :org AND seq = 2"
            ),
            {"org": org_id},
        )
        if db.get_bind().dialect.name == "postgresql":
            await db.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER audit_entry_append_only"))
        await db.commit()

        page = await client.get("/audit", headers=HTML)

        status = text_of(re.search(r'data-testid="chain-status">(.*?)</p>', page.text, re.S)[1])
        assert "seq 2" in status
        assert "Chain broken" in page.text

    async def test_the_download_is_a_bundle_that_verifies(
        self,
        client: Client,
        db: AsyncSession,
        tmp_path: Path,
        settings: Settings,
        clock: OffsetClock,
    ) -> None:
        org_id, _ = await _org_with_history(client, db, projects=2)

        response = await client.get("/audit/export", headers=HTML)

        assert response.status_code == 200
        assert response.headers["content-type"] == "application/zip"
        assert org_id in response.headers["content-disposition"]
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            archive.extractall(tmp_path)
        result = verify_bundle(tmp_path)
        assert result.ok, result.message
        manifest = json.loads((tmp_path / "manifest.json").read_text())
        assert manifest["org_id"] == org_id
        moved = await take_checkpoint(db, settings, clock.now())  # the export's own entry
        await db.commit()
        assert moved is not None

    async def test_members_without_the_audit_role_are_refused(
        self, client: Client, db: AsyncSession
    ) -> None:
        org = await make_org(db)
        await db.commit()
        await login(client, org.accounts[TenantRole.MEMBER])
        page = await client.get("/audit", headers=HTML)
        assert page.status_code == 403
