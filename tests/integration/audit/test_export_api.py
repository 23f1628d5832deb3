"""An auditor exports the organization's ledger through the API and verifies it offline."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.checkpoints import checkpoint_loop, take_checkpoint
from control_plane.audit.keyfiles import load_keyring, rotate_signing_key
from control_plane.audit.models import AuditCheckpointRow
from control_plane.cli.main import cli
from control_plane.clock import OffsetClock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.identity.roles import TenantRole
from control_plane.seed.demo import seed_catalog
from control_plane.settings import Settings
from tests.fixtures.factories import Tenant, make_org, signed_in

Client = AsyncTestClient[Litestar]
_slugs = itertools.count()


async def _activity(client: Client, org: Tenant, projects: int = 3) -> dict[str, str]:
    """The owner changes a few things, which the ledger records by itself."""
    owner = await signed_in(client, org.accounts[TenantRole.OWNER])
    for n in range(projects):
        response = await client.post(
            "/api/v1/projects",
            json={"name": f"Project {n}", "slug": f"project-{next(_slugs)}", "org_id": org.org_id},
            headers=owner,
        )
        assert response.status_code == 201, response.text
    return owner


async def _export(client: Client, org: Tenant, out: Path, **params: str) -> Path:
    auditor = await signed_in(client, org.accounts[TenantRole.AUDITOR])
    response = await client.get(
        f"/api/v1/orgs/{org.org_id}/audit/export", headers=auditor, params=params
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        archive.extractall(out)
    return out


def _verify(bundle: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["audit", "verify", str(bundle), *extra])
    return result.exit_code, result.output


@pytest.fixture
async def org(db: AsyncSession, clock: OffsetClock) -> Tenant:
    await seed_catalog(db, clock)  # the deployment's region (ca-qc-1, Canada) is in it
    tenant = await make_org(db)
    await db.commit()
    return tenant


class TestExport:
    async def test_an_export_verifies_offline_and_holds_the_changes(
        self, client: Client, org: Tenant, tmp_path: Path
    ) -> None:
        await _activity(client, org)

        bundle = await _export(client, org, tmp_path / "bundle")

        code, output = _verify(bundle)
        assert code == 0, output
        assert output.startswith("OK")
        lines = [json.loads(x) for x in (bundle / "entries.jsonl").read_text().splitlines()]
        created = [e for e in lines if e["action"] == "identity.create_project"]
        assert len(created) == 3
        assert {e["target"]["type"] for e in created} == {"project"}
        assert all(e["org_id"] == org.org_id for e in lines)

    async def test_a_modified_entry_is_named_by_its_sequence_number(
        self, client: Client, org: Tenant, tmp_path: Path
    ) -> None:
        await _activity(client, org)
        bundle = await _export(client, org, tmp_path / "bundle")
        path = bundle / "entries.jsonl"
        lines = path.read_text().splitlines()
        entry = json.loads(lines[1])
        lines[1] = lines[1].replace(entry["action"], "identity.nothing_happened")
        path.write_text("\n".join(lines) + "\n")

        code, output = _verify(bundle)

        assert code == 1
        assert "TAMPERED" in output
        assert f"first bad sequence number: {entry['seq']}" in output

    async def test_verifying_against_keys_fetched_from_the_api(
        self, client: Client, org: Tenant, tmp_path: Path
    ) -> None:
        await _activity(client, org, projects=1)
        bundle = await _export(client, org, tmp_path / "bundle")
        keys = await client.get("/api/v1/audit/keys")  # public: no credential
        assert keys.status_code == 200
        (tmp_path / "keys.json").write_text(keys.text)

        code, output = _verify(bundle, "--keys", str(tmp_path / "keys.json"))
        assert code == 0, output

        other = {"region": "ca-qc-1", "keys": []}
        (tmp_path / "other.json").write_text(json.dumps(other))
        code, output = _verify(bundle, "--keys", str(tmp_path / "other.json"))
        assert code == 1
        assert "unknown key" in output

    async def test_a_window_exports_only_its_entries_and_still_verifies(
        self, client: Client, org: Tenant, tmp_path: Path, clock: OffsetClock
    ) -> None:
        await _activity(client, org, projects=2)
        clock.advance(7200)
        middle = clock.now()
        await _activity(client, org, projects=0)  # a sign-in, an hour later
        owner = await signed_in(client, org.accounts[TenantRole.OWNER])
        await client.post(
            "/api/v1/projects",
            json={"name": "Late", "slug": "late", "org_id": org.org_id},
            headers=owner,
        )

        bundle = await _export(
            client, org, tmp_path / "bundle", since=middle.isoformat().replace("+00:00", "Z")
        )

        code, output = _verify(bundle)
        assert code == 0, output
        lines = [json.loads(x) for x in (bundle / "entries.jsonl").read_text().splitlines()]
        assert lines
        assert all(e["at"] >= middle.isoformat()[:19] for e in lines)
        assert lines[0]["seq"] > 1
        assert "identity.create_project" in {e["action"] for e in lines}

    async def test_another_org_cannot_export_and_the_auditor_cannot_write(
        self, client: Client, org: Tenant, db: AsyncSession
    ) -> None:
        outsider = await make_org(db)
        await db.commit()
        as_outsider = await signed_in(client, outsider.accounts[TenantRole.OWNER])
        response = await client.get(f"/api/v1/orgs/{org.org_id}/audit/export", headers=as_outsider)
        assert response.status_code == 404
        member = await signed_in(client, org.accounts[TenantRole.MEMBER])
        response = await client.get(f"/api/v1/orgs/{org.org_id}/audit/entries", headers=member)
        assert response.status_code == 403

    async def test_the_export_itself_is_recorded(self, client: Client, org: Tenant) -> None:
        await _activity(client, org, projects=0)
        auditor = await signed_in(client, org.accounts[TenantRole.AUDITOR])
        await client.get(f"/api/v1/orgs/{org.org_id}/audit/export", headers=auditor)

        listed = await client.get(
            f"/api/v1/orgs/{org.org_id}/audit/entries",
            headers=auditor,
            params={"action": "audit.export"},
        )
        assert listed.status_code == 200
        (entry,) = listed.json()["items"]
        assert entry["action"] == "audit.export_audit_bundle"
        assert entry["actor"]["id"] == org.accounts[TenantRole.AUDITOR].user_id


class TestResidency:
    async def test_a_sovereign_policy_refuses_an_undeclared_destination_and_records_it(
        self, client: Client, org: Tenant, tmp_path: Path
    ) -> None:
        owner = await signed_in(client, org.accounts[TenantRole.OWNER])
        changed = await client.put(
            f"/api/v1/orgs/{org.org_id}/residency-policy",
            json={"template": "canada-sovereign"},
            headers=owner,
        )
        assert changed.status_code == 200, changed.text

        refused = await client.get(f"/api/v1/orgs/{org.org_id}/audit/export", headers=owner)
        abroad = await client.get(
            f"/api/v1/orgs/{org.org_id}/audit/export", headers=owner, params={"destination": "US"}
        )
        at_home = await client.get(
            f"/api/v1/orgs/{org.org_id}/audit/export", headers=owner, params={"destination": "ca"}
        )

        for answer in (refused, abroad):
            assert answer.status_code == 403
            assert answer.json()["type"].endswith("/residency-denied")
            assert answer.json()["rule"]
        assert at_home.status_code == 200
        decisions = await client.get(
            f"/api/v1/orgs/{org.org_id}/audit/entries",
            headers=owner,
            params={"action": "residency.decision"},
        )
        outcomes = [e["outcome"] for e in decisions.json()["items"]]
        assert outcomes == ["allowed", "denied", "denied"]

    async def test_a_malformed_destination_is_a_field_error(
        self, client: Client, org: Tenant
    ) -> None:
        owner = await signed_in(client, org.accounts[TenantRole.OWNER])
        answer = await client.get(
            f"/api/v1/orgs/{org.org_id}/audit/export",
            headers=owner,
            params={"destination": "Canada"},
        )
        assert answer.status_code == 400
        assert answer.json()["errors"][0]["field"] == "query.destination"


class TestEntriesApi:
    async def test_newest_first_with_filters_and_cursor(self, client: Client, org: Tenant) -> None:
        owner = await _activity(client, org, projects=3)
        pages, cursor = [], None
        while True:
            params = {"limit": "2", "action": "identity.create_project"}
            if cursor:
                params["cursor"] = cursor
            response = await client.get(
                f"/api/v1/orgs/{org.org_id}/audit/entries", headers=owner, params=params
            )
            assert response.status_code == 200
            pages.append(response.json()["items"])
            cursor = response.json()["next_cursor"]
            if not cursor:
                break
        seqs = [e["seq"] for page in pages for e in page]
        assert len(seqs) == 3
        assert seqs == sorted(seqs, reverse=True)

    async def test_a_bad_window_is_a_field_error(self, client: Client, org: Tenant) -> None:
        owner = await _activity(client, org, projects=0)
        response = await client.get(
            f"/api/v1/orgs/{org.org_id}/audit/entries",
            headers=owner,
            params={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "query.since"


class TestCheckpointsAndKeys:
    async def test_a_checkpoint_is_taken_only_when_the_ledger_moved(
        self, client: Client, org: Tenant, db: AsyncSession, settings: Settings, clock: OffsetClock
    ) -> None:
        await _activity(client, org, projects=1)
        first = await take_checkpoint(db, settings, clock.now())
        again = await take_checkpoint(db, settings, clock.now())
        await db.commit()
        assert first is not None
        assert again is None
        await _activity(client, org, projects=1)
        second = await take_checkpoint(db, settings, clock.now())
        await db.commit()
        assert second is not None
        assert second.number == first.number + 1
        assert second.prev_checkpoint_hash == first.checkpoint_hash

    async def test_the_background_cadence_signs_checkpoints(
        self, client: Client, org: Tenant, settings: Settings, clock: OffsetClock
    ) -> None:
        await _activity(client, org, projects=1)
        fast = settings.model_copy(update={"audit_checkpoint_seconds": 0.05})
        engine = make_engine(settings.database_url)  # this test's event loop, not the app's
        sessions = make_sessionmaker(engine)
        task = asyncio.create_task(checkpoint_loop(sessions, fast, clock))
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                async with sessions() as db:
                    count = await db.scalar(select(func.count()).select_from(AuditCheckpointRow))
                if count:
                    break
            await asyncio.sleep(0.3)  # several more ticks: the ledger did not move
            async with sessions() as db:
                count = await db.scalar(select(func.count()).select_from(AuditCheckpointRow))
        finally:
            task.cancel()  # and wait for it: a tick still writing would outlive the test
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await engine.dispose()
        assert count == 1

    async def test_rotation_keeps_old_exports_verifiable_and_publishes_both_keys(
        self, client: Client, org: Tenant, settings: Settings, clock: OffsetClock, tmp_path: Path
    ) -> None:
        await _activity(client, org, projects=1)
        before = await _export(client, org, tmp_path / "before")
        old = load_keyring(settings.key_dir, settings.region, clock.now()).signing_key(
            settings.region
        )
        clock.advance(300)
        new = rotate_signing_key(settings.key_dir, settings.region, clock.now())
        clock.advance(300)
        await _activity(client, org, projects=1)

        after = await _export(client, org, tmp_path / "after")

        keys = (await client.get("/api/v1/audit/keys")).json()["keys"]
        assert [k["key_id"] for k in keys] == [old.key_id, new.key_id]
        assert keys[0]["not_after"] is not None
        assert keys[1]["not_after"] is None
        checkpoints = json.loads((after / "checkpoints.json").read_text())
        assert {c["key_id"] for c in checkpoints} == {old.key_id, new.key_id}
        for bundle in (before, after):
            code, output = _verify(bundle)
            assert code == 0, output
        assert not list((settings.key_dir / "audit" / settings.region).glob(f"{old.key_id}*"))
