"""Operator access approval through the API: ask, decide, use, expire, revoke, break the
glass, and the residency gate at request time and at every use."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit import store as ledger
from control_plane.audit.chain import AuditEntry, chain_name
from control_plane.clock import OffsetClock
from control_plane.identity.models import Membership
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.ids import new_id
from control_plane.seed.demo import seed_catalog
from control_plane.settings import Settings
from tests.fixtures.factories import (
    Account,
    Tenant,
    bearer,
    make_api_key,
    make_org,
    make_user,
    signed_in,
)

Client = AsyncTestClient[Litestar]
REQUESTS = "/api/v1/access-requests"


@dataclass
class People:
    org: Tenant
    admin: dict[str, str]
    auditor: dict[str, str]
    member: dict[str, str]
    op_ca: dict[str, str]
    op_se: dict[str, str]
    op_admin: dict[str, str]
    op_ca_account: Account


@pytest.fixture
async def people(client: Client, db: AsyncSession, clock: OffsetClock) -> People:
    await seed_catalog(db, clock)
    org = await make_org(db)
    ca = await make_user(db, provider_role=ProviderRole.OPERATOR, home_country="CA")
    se = await make_user(db, provider_role=ProviderRole.OPERATOR, home_country="SE")
    admin = await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN)
    await db.commit()
    return People(
        org=org,
        admin=await signed_in(client, org.accounts[TenantRole.ADMIN]),
        auditor=await signed_in(client, org.accounts[TenantRole.AUDITOR]),
        member=await signed_in(client, org.accounts[TenantRole.MEMBER]),
        op_ca=await signed_in(client, ca),
        op_se=await signed_in(client, se),
        op_admin=await signed_in(client, admin),
        op_ca_account=ca,
    )


def ask(org_id: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "org_id": org_id,
        "resource_type": "support_data",
        "reason_code": "customer_initiated_support",
        "justification": "Ticket 4711: customer reports failing jobs",
        "duration_minutes": 60,
    }
    return {**body, **overrides}


def tenant_url(p: People, tail: str = "") -> str:
    return f"/api/v1/orgs/{p.org.org_id}/access-requests{tail}"


def support_url(p: People) -> str:
    return f"/api/v1/operator/orgs/{p.org.org_id}/support-data"


async def request_access(client: Client, p: People, who: dict[str, str], **kw: Any) -> str:
    response = await client.post(REQUESTS, json=ask(p.org.org_id, **kw), headers=who)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def approved(client: Client, p: People, who: dict[str, str] | None = None) -> str:
    request_id = await request_access(client, p, who or p.op_ca)
    response = await client.post(tenant_url(p, f"/{request_id}/approve"), headers=p.admin)
    assert response.status_code == 200, response.text
    return request_id


async def tenant_entries(db: AsyncSession, settings: Settings, org_id: str) -> list[AuditEntry]:
    await db.rollback()  # see what the app committed since
    return await ledger.entries(db, chain_name(org_id, settings.region))


async def set_policy(client: Client, p: People, template: str) -> None:
    owner = await signed_in(client, p.org.accounts[TenantRole.OWNER])
    response = await client.put(
        f"/api/v1/orgs/{p.org.org_id}/residency-policy",
        json={"template": template, "force": True},
        headers=owner,
    )
    assert response.status_code == 200, response.text


class TestRequestAndApproval:
    async def test_operator_reads_support_data_only_after_the_tenant_approves(
        self, client: Client, people: People, clock: OffsetClock
    ) -> None:
        p = people
        request_id = await request_access(client, p, p.op_ca)

        refused = await client.get(support_url(p), headers=p.op_ca)
        assert refused.status_code == 403
        assert refused.json()["type"] == "/problems/access-not-granted"

        pending = await client.get(tenant_url(p), params={"state": "pending"}, headers=p.admin)
        assert [r["id"] for r in pending.json()["items"]] == [request_id]
        approval = await client.post(tenant_url(p, f"/{request_id}/approve"), headers=p.admin)
        assert approval.json()["state"] == "approved"
        assert approval.json()["active"] is True

        snapshot = await client.get(support_url(p), headers=p.op_ca)
        assert snapshot.status_code == 200, snapshot.text
        body = snapshot.json()
        assert body["org_id"] == p.org.org_id
        assert [project["slug"] for project in body["projects"]] == ["default"]
        assert body["member_count"] == len(TenantRole)
        assert body["grant_request_id"] == request_id
        assert "secret" not in snapshot.text
        assert "email" not in snapshot.text

    async def test_each_use_is_in_the_tenants_ledger_with_the_justification(
        self, client: Client, people: People, db: AsyncSession, settings: Settings
    ) -> None:
        p = people
        request_id = await approved(client, p)

        await client.get(support_url(p), params={"purpose": "check quotas"}, headers=p.op_ca)

        uses = [
            e for e in await tenant_entries(db, settings, p.org.org_id) if e.action == "access.use"
        ]
        assert [(u.outcome, u.decision_ref, u.actor_kind) for u in uses] == [
            ("allowed", "Ticket 4711: customer reports failing jobs", "operator")
        ]
        detail = await client.get(tenant_url(p, f"/{request_id}"), headers=p.auditor)
        [use] = detail.json()["uses"]
        assert use["purpose"] == "check quotas"
        assert use["ledger_seq"] == uses[0].seq

    async def test_grant_ends_when_its_window_runs_out(
        self, client: Client, people: People, clock: OffsetClock
    ) -> None:
        p = people
        request_id = await approved(client, p)
        assert (await client.get(support_url(p), headers=p.op_ca)).status_code == 200

        clock.advance(61 * 60)

        assert (await client.get(support_url(p), headers=p.op_ca)).status_code == 403
        shown = await client.get(f"{REQUESTS}/{request_id}", headers=p.op_ca)
        assert shown.json()["request"]["state"] == "expired"
        expired = await client.get(tenant_url(p), params={"state": "expired"}, headers=p.admin)
        assert [r["id"] for r in expired.json()["items"]] == [request_id]

    async def test_request_nobody_decides_expires_and_cannot_be_approved_late(
        self, client: Client, people: People, clock: OffsetClock
    ) -> None:
        p = people
        request_id = await request_access(client, p, p.op_ca)

        clock.advance(24 * 3600)
        admin = await signed_in(client, p.org.accounts[TenantRole.ADMIN])  # sessions end too

        late = await client.post(tenant_url(p, f"/{request_id}/approve"), headers=admin)
        assert late.status_code == 409
        assert late.json()["state"] == "expired"

    async def test_tenant_revokes_a_grant_early(self, client: Client, people: People) -> None:
        p = people
        request_id = await approved(client, p)

        revoked = await client.post(tenant_url(p, f"/{request_id}/revoke"), headers=p.admin)

        assert revoked.json()["state"] == "revoked"
        assert (await client.get(support_url(p), headers=p.op_ca)).status_code == 403
        again = await client.post(tenant_url(p, f"/{request_id}/revoke"), headers=p.admin)
        assert again.status_code == 200  # the same answer: revoking is safe to retry

    async def test_denied_request_says_why_and_cannot_then_be_approved(
        self, client: Client, people: People
    ) -> None:
        p = people
        request_id = await request_access(client, p, p.op_ca)

        denied = await client.post(
            tenant_url(p, f"/{request_id}/deny"), json={"reason": "Not now"}, headers=p.admin
        )

        assert denied.json()["state"] == "denied"
        mine = await client.get(f"{REQUESTS}/{request_id}", headers=p.op_ca)
        assert mine.json()["request"]["decision_note"] == "Not now"
        late = await client.post(tenant_url(p, f"/{request_id}/approve"), headers=p.admin)
        assert late.status_code == 409

    async def test_auditors_and_members_cannot_decide(self, client: Client, people: People) -> None:
        p = people
        request_id = await request_access(client, p, p.op_ca)

        for who in (p.auditor, p.member):
            answer = await client.post(tenant_url(p, f"/{request_id}/approve"), headers=who)
            assert answer.status_code == 403
        assert (await client.get(tenant_url(p), headers=p.member)).status_code == 403
        assert (await client.get(tenant_url(p), headers=p.auditor)).status_code == 200


class TestOperatorsOwnRequests:
    async def test_operators_see_and_withdraw_only_their_own_requests(
        self, client: Client, people: People
    ) -> None:
        p = people
        request_id = await request_access(client, p, p.op_ca)

        assert (await client.get(f"{REQUESTS}/{request_id}", headers=p.op_se)).status_code == 404
        others = await client.get(REQUESTS, headers=p.op_se)
        assert others.json()["items"] == []
        hidden = await client.post(f"{REQUESTS}/{request_id}/withdraw", headers=p.op_se)
        assert hidden.status_code == 404
        overseen = await client.get(f"{REQUESTS}/{request_id}", headers=p.op_admin)
        assert overseen.status_code == 200

        withdrawn = await client.post(f"{REQUESTS}/{request_id}/withdraw", headers=p.op_ca)
        assert withdrawn.json()["state"] == "withdrawn"
        late = await client.post(tenant_url(p, f"/{request_id}/approve"), headers=p.admin)
        assert late.status_code == 409

    async def test_one_open_request_per_resource(self, client: Client, people: People) -> None:
        p = people
        await request_access(client, p, p.op_ca)

        twice = await client.post(REQUESTS, json=ask(p.org.org_id), headers=p.op_ca)

        assert twice.status_code == 409

    async def test_list_is_paginated_newest_first(self, client: Client, people: People) -> None:
        p = people
        made = [
            await request_access(
                client, p, p.op_ca, resource_type="tenancy", resource_id=f"ten_{n}"
            )
            for n in range(3)
        ]

        first = (await client.get(REQUESTS, params={"limit": 2}, headers=p.op_ca)).json()
        rest = await client.get(
            REQUESTS, params={"limit": 2, "cursor": first["next_cursor"]}, headers=p.op_ca
        )

        ids = [r["id"] for r in first["items"]] + [r["id"] for r in rest.json()["items"]]
        assert ids == made[::-1]

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"duration_minutes": 10}, "duration_minutes"),
            ({"duration_minutes": 72 * 60 + 1}, "duration_minutes"),
            ({"reason_code": "curiosity"}, "reason_code"),
            ({"resource_type": "tenancy"}, "resource_id"),
            ({"resource_id": "org_someone_else"}, "resource_id"),
            ({"justification": ""}, "justification"),
        ],
    )
    async def test_bad_requests_name_the_field(
        self, client: Client, people: People, overrides: dict[str, Any], field: str
    ) -> None:
        answer = await client.post(
            REQUESTS, json=ask(people.org.org_id, **overrides), headers=people.op_ca
        )

        assert answer.status_code == 400, answer.text
        assert field in answer.text

    async def test_tenants_cannot_request_operator_access(
        self, client: Client, people: People
    ) -> None:
        answer = await client.post(REQUESTS, json=ask(people.org.org_id), headers=people.admin)

        assert answer.status_code == 403


class TestNoSelfApproval:
    async def test_a_tenant_admin_who_is_also_the_operator_cannot_approve_their_own_request(
        self, client: Client, people: People, db: AsyncSession, clock: OffsetClock
    ) -> None:
        p = people
        db.add(
            Membership(
                id=new_id("mem"),
                org_id=p.org.org_id,
                user_id=p.op_ca_account.user_id,
                role=TenantRole.ADMIN,
                created_at=clock.now(),
            )
        )
        await db.commit()
        both = await signed_in(client, p.op_ca_account)
        request_id = await request_access(client, p, both)

        own = await client.post(tenant_url(p, f"/{request_id}/approve"), headers=both)

        assert own.status_code == 403
        assert "your own" in own.json()["detail"]
        other = await client.post(tenant_url(p, f"/{request_id}/approve"), headers=p.admin)
        assert other.status_code == 200

    async def test_an_api_key_made_by_the_operator_cannot_approve_for_them(
        self, client: Client, people: People, db: AsyncSession, clock: OffsetClock
    ) -> None:
        p = people
        db.add(
            Membership(
                id=new_id("mem"),
                org_id=p.org.org_id,
                user_id=p.op_ca_account.user_id,
                role=TenantRole.ADMIN,
                created_at=clock.now(),
            )
        )
        await db.commit()
        both = await signed_in(client, p.op_ca_account)
        made = await client.post(
            f"/api/v1/projects/{p.org.project_id}/api-keys", json={"name": "mine"}, headers=both
        )
        assert made.status_code == 201, made.text
        request_id = await request_access(client, p, both)

        own = await client.post(
            tenant_url(p, f"/{request_id}/approve"), headers=bearer(made.json()["secret"])
        )

        assert own.status_code == 403

    async def test_an_admin_key_approves(
        self, client: Client, people: People, db: AsyncSession
    ) -> None:
        p = people
        secret = await make_api_key(db, p.org, TenantRole.ADMIN)
        await db.commit()
        request_id = await request_access(client, p, p.op_ca)

        answer = await client.post(tenant_url(p, f"/{request_id}/approve"), headers=bearer(secret))

        assert answer.json()["decided_by"].startswith("api_key:")


class TestResidencyGate:
    async def test_operator_from_outside_the_policy_cannot_even_ask(
        self, client: Client, people: People, db: AsyncSession, settings: Settings
    ) -> None:
        p = people
        await set_policy(client, p, "canada-sovereign")

        refused = await client.post(REQUESTS, json=ask(p.org.org_id), headers=p.op_se)

        assert refused.status_code == 403
        body = refused.json()
        assert body["type"] == "/problems/residency-denied"
        assert body["rule"] == "residency.operator_jurisdictions"
        assert "SE" in body["detail"]
        entries = await tenant_entries(db, settings, p.org.org_id)
        assert [
            (e.action, e.outcome, e.decision_ref) for e in entries if e.action.startswith("access.")
        ] == [("access.policy_refused", "denied", "residency.operator_jurisdictions")]
        assert (await client.get(tenant_url(p), headers=p.admin)).json()["items"] == []
        allowed = await client.post(REQUESTS, json=ask(p.org.org_id), headers=p.op_ca)
        assert allowed.json()["policy_rule"] == "residency.operator_jurisdictions"

    async def test_a_tightened_policy_stops_an_approved_grant_at_its_next_use(
        self, client: Client, people: People
    ) -> None:
        p = people
        await approved(client, p)
        assert (await client.get(support_url(p), headers=p.op_ca)).status_code == 200

        await set_policy(client, p, "eu-data-boundary")

        refused = await client.get(support_url(p), headers=p.op_ca)
        assert refused.status_code == 403
        assert refused.json()["rule"] == "residency.operator_jurisdictions"

    async def test_staff_without_a_home_jurisdiction_are_refused_by_a_restricted_policy(
        self, client: Client, people: People
    ) -> None:
        p = people
        await set_policy(client, p, "canada-sovereign")

        refused = await client.post(
            "/api/v1/break-glass", json=ask(p.org.org_id), headers=p.op_admin
        )

        assert refused.status_code == 403
        assert "no declared home jurisdiction" in refused.json()["detail"]


class TestBreakGlass:
    async def test_break_glass_is_active_at_once_notifies_and_is_reviewed(
        self, client: Client, people: People, db: AsyncSession, settings: Settings
    ) -> None:
        p = people
        opened = await client.post(
            "/api/v1/break-glass",
            json=ask(p.org.org_id, reason_code="incident_response", duration_minutes=240),
            headers=p.op_admin,
        )
        assert opened.status_code == 201, opened.text
        glass = opened.json()
        assert (glass["kind"], glass["state"], glass["review_required"]) == (
            "break_glass",
            "approved",
            True,
        )

        assert (await client.get(support_url(p), headers=p.op_admin)).status_code == 200
        notices = await client.get(
            f"/api/v1/orgs/{p.org.org_id}/access-notifications",
            params={"unacknowledged": "true"},
            headers=p.admin,
        )
        [notice] = notices.json()["items"]
        assert notice["request_id"] == glass["id"]
        assert "Break-glass" in notice["message"]
        actions = [e.action for e in await tenant_entries(db, settings, p.org.org_id)]
        assert "access.break_glass" in actions

        reviewed = await client.post(
            tenant_url(p, f"/{glass['id']}/review"),
            json={"verdict": "disputed", "comment": "No incident on our side"},
            headers=p.admin,
        )
        assert reviewed.json()["review_verdict"] == "disputed"
        left = await client.get(
            f"/api/v1/orgs/{p.org.org_id}/access-notifications",
            params={"unacknowledged": "true"},
            headers=p.admin,
        )
        assert left.json()["items"] == []
        changed = await client.post(
            tenant_url(p, f"/{glass['id']}/review"), json={"verdict": "accepted"}, headers=p.admin
        )
        assert changed.status_code == 409

    async def test_break_glass_lasts_at_most_four_hours_and_only_for_operator_admins(
        self, client: Client, people: People
    ) -> None:
        p = people
        too_long = await client.post(
            "/api/v1/break-glass", json=ask(p.org.org_id, duration_minutes=241), headers=p.op_admin
        )
        plain = await client.post("/api/v1/break-glass", json=ask(p.org.org_id), headers=p.op_ca)

        assert too_long.status_code == 400
        assert plain.status_code == 403

    async def test_notification_is_acknowledged_once(self, client: Client, people: People) -> None:
        p = people
        await client.post("/api/v1/break-glass", json=ask(p.org.org_id), headers=p.op_admin)
        url = f"/api/v1/orgs/{p.org.org_id}/access-notifications"
        [notice] = (await client.get(url, headers=p.auditor)).json()["items"]

        assert (
            await client.post(f"{url}/{notice['id']}/acknowledge", headers=p.auditor)
        ).status_code == 403
        first = await client.post(f"{url}/{notice['id']}/acknowledge", headers=p.admin)
        again = await client.post(f"{url}/{notice['id']}/acknowledge", headers=p.admin)

        assert first.json()["acknowledged_at"] == again.json()["acknowledged_at"] is not None


class TestAccessReport:
    async def test_report_lists_every_request_decision_window_and_use(
        self, client: Client, people: People
    ) -> None:
        p = people
        used = await approved(client, p)
        await client.get(support_url(p), headers=p.op_ca)
        denied = await request_access(
            client, p, p.op_se, resource_type="tenancy", resource_id="ten_1"
        )
        await client.post(tenant_url(p, f"/{denied}/deny"), json={"reason": "no"}, headers=p.admin)
        url = f"/api/v1/orgs/{p.org.org_id}/access-report"

        report = (await client.get(url, headers=p.auditor)).json()
        as_csv = await client.get(url, params={"format": "csv"}, headers=p.auditor)

        by_id = {item["request"]["id"]: item for item in report["requests"]}
        assert by_id[used]["request"]["approved_at"] is not None
        assert len(by_id[used]["uses"]) == 1
        assert by_id[denied]["request"]["decision_note"] == "no"
        assert as_csv.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert {(r["request_id"], r["state"], bool(r["use_at"])) for r in rows} == {
            (used, "approved", True),
            (denied, "denied", False),
        }

    async def test_other_organizations_see_nothing(
        self, client: Client, people: People, db: AsyncSession
    ) -> None:
        p = people
        request_id = await request_access(client, p, p.op_ca)
        other = await make_org(db)
        await db.commit()
        stranger = await signed_in(client, other.accounts[TenantRole.OWNER])

        for path in (
            tenant_url(p),
            tenant_url(p, f"/{request_id}"),
            f"/api/v1/orgs/{p.org.org_id}/access-report",
        ):
            assert (await client.get(path, headers=stranger)).status_code == 404
        approve = await client.post(tenant_url(p, f"/{request_id}/approve"), headers=stranger)
        assert approve.status_code == 404
