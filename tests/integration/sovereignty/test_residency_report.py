"""The residency report: every resource, where it lives, the clause permitting it or that it
is flagged, in JSON, CSV and HTML, each signed so an auditor can check it offline."""

from __future__ import annotations

import csv
import io
import json

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit import store as ledger
from control_plane.audit.canonical import canonical_json
from control_plane.audit.models import AuditEntryRow
from control_plane.audit.signing import verify_signature
from control_plane.clock import Clock
from control_plane.identity.roles import TenantRole
from control_plane.seed.demo import seed_catalog
from tests.fixtures.factories import Tenant, make_org, signed_in

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def keys(client: Client) -> dict[str, str]:
    """The region's published signing keys (key id -> base64 public key), as an auditor
    fetches them independently of any report."""
    response = await client.get("/api/v1/audit/keys")
    assert response.status_code == 200, response.text
    return {k["key_id"]: k["public_key"] for k in response.json()["keys"]}


@pytest.fixture
async def org(db: AsyncSession, clock: Clock) -> Tenant:
    """An organization with ledger chains in Canada and Sweden, under canada-sovereign
    saved with force (so the Swedish chain is flagged)."""
    await seed_catalog(db, clock)
    tenant = await make_org(db)
    for region in ("ca-qc-1", "se-north-1"):
        await ledger.record(
            db,
            org_id=tenant.org_id,
            region=region,
            actor_kind="system",
            actor_id=None,
            action="test.seed",
            target_type=None,
            target_id=None,
            request_id=None,
            source_address=None,
            outcome="success",
            at=clock.now(),
        )
    await db.commit()
    return tenant


@pytest.fixture
async def auditor(client: Client, org: Tenant) -> dict[str, str]:
    owner = await signed_in(client, org.accounts[TenantRole.OWNER])
    response = await client.put(
        f"/api/v1/orgs/{org.org_id}/residency-policy",
        json={"template": "canada-sovereign", "force": True},
        headers=owner,
    )
    assert response.status_code == 200, response.text
    return await signed_in(client, org.accounts[TenantRole.AUDITOR])


def _url(org: Tenant) -> str:
    return f"/api/v1/orgs/{org.org_id}/residency-report"


class TestReportContent:
    async def test_json_lists_each_resource_with_its_clause_or_flag(
        self, client: Client, org: Tenant, auditor: dict[str, str], keys: dict[str, str]
    ) -> None:
        response = await client.get(_url(org), headers=auditor)
        assert response.status_code == 200, response.text
        report = response.json()["report"]
        assert report["org_id"] == org.org_id
        assert report["policy"]["version"] == 1
        assert report["policy"]["template"] == "canada-sovereign"
        by_region = {r["region_code"]: r for r in report["resources"] if r["kind"] == "audit_chain"}
        assert by_region["ca-qc-1"]["status"] == "permitted"
        assert by_region["ca-qc-1"]["jurisdiction"] == "CA"
        assert by_region["ca-qc-1"]["rule"] == "residency.allowed_jurisdictions"
        assert by_region["se-north-1"]["status"] == "flagged"
        assert by_region["se-north-1"]["flagged_in_version"] == 1
        assert report["summary"]["flagged"] == 1

    async def test_csv_has_one_row_per_resource(
        self, client: Client, org: Tenant, auditor: dict[str, str], keys: dict[str, str]
    ) -> None:
        response = await client.get(_url(org), params={"format": "csv"}, headers=auditor)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert {(r["region_code"], r["status"]) for r in rows} >= {
            ("ca-qc-1", "permitted"),
            ("se-north-1", "flagged"),
        }

    async def test_html_is_a_printable_page_without_inline_script_or_style(
        self, client: Client, org: Tenant, auditor: dict[str, str], keys: dict[str, str]
    ) -> None:
        response = await client.get(_url(org), params={"format": "html"}, headers=auditor)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        assert "<h1>Residency report</h1>" in response.text
        assert "se-north-1" in response.text
        assert "<script" not in response.text
        assert "style=" not in response.text

    async def test_an_unknown_format_is_refused(
        self, client: Client, org: Tenant, auditor: dict[str, str], keys: dict[str, str]
    ) -> None:
        response = await client.get(_url(org), params={"format": "pdf"}, headers=auditor)
        assert response.status_code == 400

    async def test_the_download_is_recorded_in_the_ledger(
        self, client: Client, db: AsyncSession, org: Tenant, auditor: dict[str, str]
    ) -> None:
        response = await client.get(_url(org), params={"format": "csv"}, headers=auditor)
        assert response.status_code == 200
        db.expire_all()
        query = select(AuditEntryRow).where(
            AuditEntryRow.request_id == response.headers["x-request-id"]
        )
        entry = (await db.execute(query)).scalars().one()
        assert entry.org_id == org.org_id
        assert entry.outcome == "success"

    async def test_a_member_without_policy_read_is_refused(
        self, client: Client, org: Tenant, keys: dict[str, str]
    ) -> None:
        member = await signed_in(client, org.accounts[TenantRole.MEMBER])
        assert (await client.get(_url(org), headers=member)).status_code == 403


class TestReportSignature:
    @pytest.mark.parametrize("fmt", ["json", "csv", "html"])
    async def test_the_header_signature_verifies_over_the_exact_bytes(
        self,
        client: Client,
        org: Tenant,
        auditor: dict[str, str],
        keys: dict[str, str],
        fmt: str,
    ) -> None:
        response = await client.get(_url(org), params={"format": fmt}, headers=auditor)
        key = keys[response.headers["x-report-key-id"]]
        signature = response.headers["x-report-signature"]
        assert verify_signature(key, response.content, signature)
        assert not verify_signature(
            key, response.content.replace(b"se-north-1", b"ca-qc-2"), signature
        )

    async def test_the_embedded_signature_verifies_over_the_canonical_report(
        self,
        client: Client,
        org: Tenant,
        auditor: dict[str, str],
        keys: dict[str, str],
    ) -> None:
        body = (await client.get(_url(org), headers=auditor)).json()
        signature = body["signature"]
        assert signature["public_key"] == keys[signature["key_id"]]
        message = canonical_json(body["report"])
        assert verify_signature(signature["public_key"], message, signature["value"])
        tampered = json.loads(json.dumps(body["report"]))
        tampered["resources"][-1]["status"] = "permitted"
        assert not verify_signature(
            signature["public_key"], canonical_json(tampered), signature["value"]
        )
