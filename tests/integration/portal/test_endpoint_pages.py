"""The endpoint pages: the list with tokens per hour and the governance switch; the create
form with the models of the allowed stores and its field errors; one endpoint's replicas,
versions, approval, scale, split, delete, metrics and snippets; and what another
organization (or a missing CSRF token) gets. Replicas run on the simulator here; the
Chromium test runs them on a real Triton."""

from __future__ import annotations

import html
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.metering.service import NewUsage, record_usage
from control_plane.settings import Settings
from tests.fixtures.capacity import make_fleet
from tests.fixtures.factories import Tenant, login, make_org
from tests.fixtures.models import fake_model
from tests.integration.portal.test_tenancy_pages import HTML, Client, chart_data, text_of

REGION = "ca-qc-1"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={"model_store_root": tmp_path / "models", "drivers": {f"{REGION}/inference": "sim"}}
    )


@pytest.fixture
def model(settings: Settings) -> str:
    return fake_model(settings.model_store_root, REGION, "tiny-chat", license="mit")


@pytest.fixture
async def org(db: AsyncSession) -> Tenant:
    tenant = await make_org(db, roles=(TenantRole.OWNER, TenantRole.MEMBER))
    await db.commit()
    return tenant


@pytest.fixture
async def fleet(db: AsyncSession, clock: OffsetClock) -> list[str]:
    nodes = await make_fleet(db, clock, nodes=1, gpus_per_node=8, prefix="qc-h100")
    await db.commit()
    return nodes


async def sign_in(client: Client, org: Tenant, role: TenantRole = TenantRole.MEMBER) -> str:
    return (await login(client, org.accounts[role]))["X-CSRF-Token"]


async def create(client: Client, csrf: str, model: str, **fields: str) -> str:
    """Post the create form; where it redirects to."""
    form = {
        "_csrf": csrf,
        "name": "chat",
        "region": REGION,
        "model": model,
        "gpu_model": "h100",
        "size": "quarter",
        "min_replicas": "1",
        "max_replicas": "2",
        **fields,
    }
    response = await client.post("/endpoints", data=form, headers=HTML, follow_redirects=False)
    assert response.status_code == 303, text_of(response.text)[:600]
    return str(response.headers["location"])


class TestList:
    async def test_an_empty_organization_is_told_how_to_start(
        self, client: Client, org: Tenant
    ) -> None:
        await sign_in(client, org)
        page = await client.get("/endpoints", headers=HTML)

        assert page.status_code == 200
        assert 'href="/endpoints" aria-current="page"' in page.text
        assert "No endpoints yet." in text_of(page.text)
        assert 'href="/endpoints/new"' in page.text
        assert "Model governance" in text_of(page.text)
        assert "Require approval" not in text_of(page.text)  # members do not validate

    async def test_endpoints_show_state_replicas_versions_url_and_tokens_per_hour(
        self,
        client: Client,
        org: Tenant,
        fleet: list[str],
        model: str,
        db: AsyncSession,
        clock: OffsetClock,
    ) -> None:
        csrf = await sign_in(client, org)
        await create(client, csrf, model)
        detail = await client.get("/endpoints/chat", headers=HTML)
        endpoint_id = text_of(detail.text).split("per replica · ", 1)[1].split()[0]
        now = clock.now()
        start = now - timedelta(hours=2)
        usage = [
            NewUsage(
                "gateway",
                f"u-{kind}",
                org.org_id,
                None,
                kind,
                Decimal(n),
                start,
                start + timedelta(minutes=1),
                {"endpoint": endpoint_id},
            )
            for kind, n in (("tokens_in", 30), ("tokens_out", 12))
        ]
        await record_usage(db, usage, now)
        await db.commit()
        listing = await client.get("/endpoints", headers=HTML)

        words = text_of(listing.text)
        assert "chat" in words
        assert "Deploying" in words
        assert REGION in words
        assert "0 / 1" in words
        assert "v1 · 100%" in words
        assert "/v1" in words
        chart = chart_data(listing.text, "chart-tokens")
        series = {s["key"]: sum(s["values"]) for s in chart["series"]}  # type: ignore[attr-defined]
        assert series == {"tokens_in": 30, "tokens_out": 12}
        assert len(chart["labels"]) == 24  # type: ignore[arg-type]
        detail = await client.get("/endpoints/chat", headers=HTML)
        own = chart_data(detail.text, "chart-endpoint-tokens")
        assert sum(own["series"][1]["values"]) == 12  # type: ignore[index]

    async def test_a_validator_switches_governance_on(self, client: Client, org: Tenant) -> None:
        csrf = await sign_in(client, org, TenantRole.OWNER)
        answer = await client.post(
            "/endpoints/governance",
            data={"_csrf": csrf, "require_approval": "on"},
            headers=HTML,
            follow_redirects=False,
        )
        assert answer.status_code == 303
        page = await client.get(answer.headers["location"], headers=HTML)
        assert "Model governance is on" in text_of(page.text)
        assert "Stop requiring approval" in text_of(page.text)

    async def test_a_member_cannot_switch_governance(self, client: Client, org: Tenant) -> None:
        csrf = await sign_in(client, org)
        answer = await client.post(
            "/endpoints/governance", data={"_csrf": csrf, "require_approval": "on"}, headers=HTML
        )
        assert answer.status_code == 403


class TestNew:
    async def test_the_form_offers_the_stores_models_with_licence_and_hash(
        self, client: Client, org: Tenant, fleet: list[str], model: str, settings: Settings
    ) -> None:
        fake_model(settings.model_store_root, "xx-nowhere-1", "abroad")  # no such region
        await sign_in(client, org)
        page = await client.get("/endpoints/new", headers=HTML)

        assert page.status_code == 200
        words = text_of(page.text)
        assert "tiny-chat · store ca-qc-1 · licence mit · weights " in words
        assert "abroad" not in words
        assert 'name="_csrf"' in page.text
        for label in ("Name", "Region", "Model", "GPU model", "Replica size", "Minimum replicas"):
            assert f">{label}" in page.text
        assert "A quarter of a GPU" in words
        assert "Two GPUs" in words

    async def test_bad_fields_are_shown_next_to_their_field(
        self, client: Client, org: Tenant, fleet: list[str], model: str
    ) -> None:
        csrf = await sign_in(client, org)
        form = {
            "_csrf": csrf,
            "name": "Not A Name",
            "region": REGION,
            "model": model,
            "gpu_model": "h100",
            "size": "quarter",
            "min_replicas": "1",
            "max_replicas": "1",
        }
        bad_name = await client.post("/endpoints", data=form, headers=HTML)
        no_model = await client.post(
            "/endpoints", data={**form, "name": "ok", "model": ""}, headers=HTML
        )
        backwards = await client.post(
            "/endpoints", data={**form, "name": "ok", "min_replicas": "3"}, headers=HTML
        )

        assert bad_name.status_code == 400
        assert 'id="e-name-error"' in bad_name.text
        assert 'value="Not A Name"' in bad_name.text
        assert no_model.status_code == 400
        assert 'id="e-model-error"' in no_model.text
        assert backwards.status_code == 400
        assert 'id="e-max_replicas-error"' in backwards.text
        assert "min_replicas cannot exceed max_replicas" in text_of(backwards.text)

    async def test_a_taken_name_is_shown_next_to_the_name(
        self, client: Client, org: Tenant, fleet: list[str], model: str
    ) -> None:
        csrf = await sign_in(client, org)
        await create(client, csrf, model)
        form = {
            "_csrf": csrf,
            "name": "chat",
            "region": REGION,
            "model": model,
            "gpu_model": "h100",
            "size": "quarter",
            "min_replicas": "1",
            "max_replicas": "1",
        }
        again = await client.post("/endpoints", data=form, headers=HTML)

        assert again.status_code == 409
        assert 'id="e-name-error"' in again.text

    async def test_a_form_without_the_csrf_token_is_refused(
        self, client: Client, org: Tenant, fleet: list[str], model: str
    ) -> None:
        await sign_in(client, org)
        form = {
            "name": "chat",
            "region": REGION,
            "model": model,
            "gpu_model": "h100",
            "size": "quarter",
            "min_replicas": "1",
            "max_replicas": "1",
        }
        response = await client.post("/endpoints", data=form, headers=HTML)
        listing = await client.get("/endpoints", headers=HTML)

        assert response.status_code == 403
        assert "No endpoints yet." in text_of(listing.text)


class TestEndpointPage:
    async def test_created_endpoint_shows_versions_replicas_timeline_and_snippets(
        self, client: Client, org: Tenant, fleet: list[str], model: str
    ) -> None:
        csrf = await sign_in(client, org)
        location = await create(client, csrf, model)
        page = await client.get(location, headers=HTML)

        assert location == "/endpoints/chat?done=created"
        words = text_of(page.text)
        assert page.status_code == 200
        assert "Endpoint created" in words
        assert "Deploying" in words
        assert "data-working" in page.text
        assert "v1" in words
        assert "No approval needed" in words
        assert "mit" in words
        assert "Created" in words  # the timeline
        assert "openai.OpenAI(base_url=" in html.unescape(page.text)
        assert "tritonclient.http" in words
        assert "curl" in words
        assert 'href="/keys"' in page.text
        assert "No request yet" in words
        assert "Save replica range" in words
        assert "Delete endpoint" in words
        assert "Save traffic split" not in words  # one version only
        live = await client.get("/endpoints/chat/live", headers=HTML)
        assert live.status_code == 200
        assert 'id="endpoint-live"' in live.text

    async def test_scale_with_bad_range_shows_the_error_then_a_good_one_saves(
        self, client: Client, org: Tenant, fleet: list[str], model: str
    ) -> None:
        csrf = await sign_in(client, org)
        await create(client, csrf, model)
        bad = await client.post(
            "/endpoints/chat/scale",
            data={"_csrf": csrf, "min_replicas": "3", "max_replicas": "1"},
            headers=HTML,
        )
        good = await client.post(
            "/endpoints/chat/scale",
            data={"_csrf": csrf, "min_replicas": "0", "max_replicas": "3"},
            headers=HTML,
            follow_redirects=False,
        )

        assert bad.status_code == 400
        assert 'id="scale-max_replicas-error"' in bad.text
        assert good.status_code == 303
        assert good.headers["location"].endswith("done=scaled")
        page = await client.get("/endpoints/chat", headers=HTML)
        assert "(range 0\N{EN DASH}3)" in text_of(page.text)

    async def test_a_validator_approves_a_pending_version(
        self, client: Client, org: Tenant, fleet: list[str], model: str
    ) -> None:
        owner = await sign_in(client, org, TenantRole.OWNER)
        await client.post(
            "/endpoints/governance", data={"_csrf": owner, "require_approval": "on"}, headers=HTML
        )
        member = await sign_in(client, org)
        await create(client, member, model)
        as_member = await client.get("/endpoints/chat", headers=HTML)
        owner = await sign_in(client, org, TenantRole.OWNER)
        as_owner = await client.get("/endpoints/chat", headers=HTML)
        decided = await client.post(
            "/endpoints/chat/versions/1/decision",
            data={"_csrf": owner, "decision": "approve", "note": "hash checked"},
            headers=HTML,
            follow_redirects=False,
        )
        after = await client.get("/endpoints/chat", headers=HTML)

        assert "Awaiting approval" in text_of(as_member.text)
        assert "Approve v1" not in text_of(as_member.text)
        assert "Approve v1" in text_of(as_owner.text)
        assert decided.status_code == 303
        assert "Approved" in text_of(after.text)
        assert "hash checked" in text_of(after.text)

    async def test_two_versions_get_a_traffic_split_form(
        self, client: Client, org: Tenant, fleet: list[str], model: str, settings: Settings
    ) -> None:
        csrf = await sign_in(client, org)
        await create(client, csrf, model)
        canary = fake_model(settings.model_store_root, REGION, "tiny-chat-2")
        added = await client.post(
            f"/api/v1/orgs/{org.org_id}/endpoints/chat/versions",
            json={"model_uri": canary, "traffic_percent": 10},
            headers={"X-CSRF-Token": csrf},
        )
        assert added.status_code == 201, added.text
        page = await client.get("/endpoints/chat", headers=HTML)
        bad = await client.post(
            "/endpoints/chat/split",
            data={"_csrf": csrf, "percent_1": "80", "percent_2": "30"},
            headers=HTML,
        )
        good = await client.post(
            "/endpoints/chat/split",
            data={"_csrf": csrf, "percent_1": "75", "percent_2": "25"},
            headers=HTML,
            follow_redirects=False,
        )
        after = await client.get(good.headers["location"], headers=HTML)

        assert "Save traffic split" in text_of(page.text)
        assert 'id="split-percent_2" name="percent_2" type="number" value="10"' in page.text
        assert bad.status_code == 400
        assert "add up to 100" in text_of(bad.text)
        assert good.status_code == 303
        assert "Traffic split saved." in text_of(after.text)
        assert 'id="split-percent_2" name="percent_2" type="number" value="25"' in after.text
        assert 'id="split-percent_1" name="percent_1" type="number" value="75"' in after.text

    async def test_delete_removes_it_from_the_list(
        self, client: Client, org: Tenant, fleet: list[str], model: str
    ) -> None:
        csrf = await sign_in(client, org)
        await create(client, csrf, model)
        gone = await client.post(
            "/endpoints/chat/delete", data={"_csrf": csrf}, headers=HTML, follow_redirects=False
        )
        listing = await client.get(gone.headers["location"], headers=HTML)

        assert gone.status_code == 303
        assert "Endpoint deleted" in text_of(listing.text)
        assert "No endpoints yet." in text_of(listing.text)

    async def test_another_organization_gets_404_for_every_endpoint_route(
        self, client: Client, org: Tenant, fleet: list[str], model: str, db: AsyncSession
    ) -> None:
        csrf = await sign_in(client, org)
        await create(client, csrf, model)
        other = await make_org(db, roles=(TenantRole.OWNER,))
        await db.commit()
        other_csrf = await sign_in(client, other, TenantRole.OWNER)
        answers = [
            (await client.get("/endpoints/chat", headers=HTML)).status_code,
            (await client.get("/endpoints/chat/live", headers=HTML)).status_code,
        ]
        for path, data in (
            ("/endpoints/chat/scale", {"min_replicas": "1", "max_replicas": "1"}),
            ("/endpoints/chat/delete", {}),
            ("/endpoints/chat/versions/1/decision", {"decision": "approve"}),
        ):
            answer = await client.post(path, data={"_csrf": other_csrf, **data}, headers=HTML)
            answers.append(answer.status_code)

        assert answers == [404, 404, 404, 404, 404]


class TestCost:
    async def test_the_page_compares_renting_gpus_with_paying_per_token(
        self,
        client: Client,
        org: Tenant,
        fleet: list[str],
        model: str,
        db: AsyncSession,
        clock: OffsetClock,
    ) -> None:
        from billing.prices.schemas import PriceBookCreate, RateIn
        from billing.prices.service import create_book

        csrf = await sign_in(client, org)
        await create(client, csrf, model)
        detail = await client.get("/endpoints/chat", headers=HTML)
        endpoint_id = text_of(detail.text).split("per replica · ", 1)[1].split()[0]
        now = clock.now()
        book = PriceBookCreate(
            effective_from=now - timedelta(days=40),
            rates=[
                RateIn("gpu_seconds", Decimal("4.00"), gpu_model="h100"),
                RateIn("tokens_in", Decimal("0.20")),
                RateIn("tokens_out", Decimal("0.60")),
            ],
        )
        await create_book(db, REGION, book, actor="test", now=now)
        start = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
        dims = {"region": REGION, "endpoint": endpoint_id}
        await record_usage(
            db,
            [
                NewUsage(
                    "tenancies",
                    "rep",
                    org.org_id,
                    None,
                    "gpu_seconds",
                    Decimal(900),
                    start,
                    start + timedelta(minutes=15),
                    {**dims, "gpu_model": "h100"},
                ),
                NewUsage(
                    "gateway",
                    "in",
                    org.org_id,
                    None,
                    "tokens_in",
                    Decimal(4_000_000),
                    start,
                    start + timedelta(minutes=1),
                    dims,
                ),
            ],
            now,
        )
        await db.commit()

        page = await client.get("/endpoints/chat", headers=HTML)

        words = text_of(page.text)
        assert "Cost per million tokens, last 30 days" in words
        assert "Renting the GPUs (0.250 GPU-hours held)" in words  # 1.00 CAD
        assert "0.80 CAD" in words  # 4 M input tokens at 0.20
        assert "Renting the GPUs was cheaper" not in words
        assert "Paying per token would have been cheaper for this traffic." in words
