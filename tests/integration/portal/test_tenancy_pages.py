"""The tenancy pages: the list with filters, quotas and the GPUs-held chart; the create
form with its shape picker, suggestion and refusals; one tenancy's progress, timeline,
resize and release; and what another organization (or a missing CSRF token) gets."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from control_plane.sovereignty.residency import service as residency
from control_plane.sovereignty.residency.schemas import PolicyChange
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.capacity import make_fleet, make_quota, make_shape
from tests.fixtures.factories import Tenant, login, make_org
from tests.fixtures.reconciler import app_reconciler

Client = AsyncTestClient[Litestar]
HTML = {"Accept": "text/html"}
SSH_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl dev@laptop"
)


def text_of(fragment: str) -> str:
    """The words of an HTML fragment; the multiplication sign reads as an x."""
    words = html.unescape(re.sub(r"<[^>]+>", " ", fragment)).replace("\N{MULTIPLICATION SIGN}", "x")
    return " ".join(words.split())


def table_rows(page: str, caption: str) -> list[str]:
    match = re.search(rf"<caption[^>]*>{re.escape(caption)}</caption>(.*?)</table>", page, re.S)
    assert match, f"no table {caption!r}"
    body = re.findall(r"<tbody>(.*?)</tbody>", match.group(1), re.S)[0]
    return [text_of(row) for row in body.split("</tr>") if text_of(row)]


def progress(page: str) -> dict[str, str]:
    """Each lifecycle step of the progress indicator and its status."""
    steps = re.findall(
        r'progress-steps__step--(\w+) [^>]*>.*?progress-steps__label">([^<]+)<', page, re.S
    )
    return {label: status for status, label in steps}


def chart_data(page: str, chart_id: str) -> dict[str, object]:
    match = re.search(
        rf'<script type="application/json" id="{chart_id}-data">(.*?)</script>', page, re.S
    )
    assert match, f"no chart {chart_id}"
    data: dict[str, object] = json.loads(html.unescape(match.group(1)))
    return data


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Simulated machines come up on their first provisioning step: one reconciler pass
    takes a tenancy from provisioning to active."""
    return settings.model_copy(update={"sim_boot_polls": 1})


@pytest.fixture
async def org(db: AsyncSession) -> Tenant:
    tenant = await make_org(db)
    await db.commit()
    return tenant


@pytest.fixture
async def fleet(db: AsyncSession, clock: OffsetClock) -> list[str]:
    """Two 8x H100 NVLink nodes in ca-qc-1 and two shapes there."""
    nodes = await make_fleet(db, clock, nodes=2, gpus_per_node=8, prefix="qc-h100")
    await make_shape(db, clock, region="ca-qc-1", name="small", model="h100", gpus_per_node=1,
                     price="3.10")  # fmt: skip
    await make_shape(db, clock, region="ca-qc-1", name="medium", model="h100", gpus_per_node=2,
                     price="6.00", interconnect="nvlink")  # fmt: skip
    await db.commit()
    return nodes


@pytest.fixture
async def reconciler(app: Litestar, clock: OffsetClock) -> AsyncIterator[Reconciler]:
    async with app_reconciler(app, clock, time_passes=False) as reconciler:
        yield reconciler


async def sign_in(client: Client, org: Tenant, role: TenantRole = TenantRole.MEMBER) -> str:
    return (await login(client, org.accounts[role]))["X-CSRF-Token"]


async def create(client: Client, csrf: str, **fields: str) -> str:
    """Post the create form; the new tenancy's id (from the redirect)."""
    form = {"_csrf": csrf, "name": "train-1", "kind": "slurm", "region": "ca-qc-1",
            "shape": "small", **fields}  # fmt: skip
    response = await client.post("/tenancies", data=form, headers=HTML, follow_redirects=False)
    assert response.status_code == 303, text_of(response.text)[:600]
    location = response.headers["location"]
    assert location.endswith("?done=created")
    return location.split("/")[-1].split("?")[0]


class TestList:
    async def test_an_empty_organization_is_told_how_to_start_and_sees_no_quota(
        self, client: Client, org: Tenant
    ) -> None:
        await sign_in(client, org)
        page = await client.get("/tenancies", headers=HTML)

        assert page.status_code == 200
        assert 'href="/tenancies" aria-current="page"' in page.text
        assert "No tenancies yet." in text_of(page.text)
        assert "No GPU quota applies" in text_of(page.text)
        assert 'href="/tenancies/new"' in page.text

    async def test_tenancies_show_state_simulated_label_gpus_quota_and_chart(
        self,
        client: Client,
        org: Tenant,
        fleet: list[str],
        db: AsyncSession,
        clock: OffsetClock,
        reconciler: Reconciler,
    ) -> None:
        await make_quota(db, clock, max_gpus=10)
        await db.commit()
        csrf = await sign_in(client, org)
        await create(client, csrf, name="first", shape="medium")
        await reconciler.converge()
        await create(client, csrf, name="second", kind="vm", shape="", gpu_model="h100",
                     gpus_per_node="3")  # fmt: skip

        page = await client.get("/tenancies", headers=HTML)

        rows = table_rows(page.text, "Tenancies, newest first")
        assert rows[0].startswith("second ten_")
        assert "Provisioning Simulated Virtual machine ca-qc-1 3 x H100 3" in rows[0]
        assert "Active Simulated Slurm account ca-qc-1 2 x H100 shape medium 2" in rows[1]
        assert "5 of 10 GPUs held" in text_of(page.text)
        assert "Active 1 ready to use" in text_of(page.text)
        assert "In progress 1 being set up or taken down" in text_of(page.text)
        assert "GPUs held 5 by tenancies not yet released" in text_of(page.text)
        chart = chart_data(page.text, "chart-gpus-held")
        assert chart["series"] == [
            {"key": "ca-qc-1", "label": "ca-qc-1", "color": "--chart-series-1",
             "values": [0] * 13 + [5]}
        ]  # fmt: skip
        assert "/static/vendor/chartjs/chart.umd.min.js" in page.text

    async def test_a_released_tenancy_leaves_the_summary_but_stays_on_the_days_it_held_gpus(
        self, client: Client, org: Tenant, fleet: list[str], clock: OffsetClock,
        reconciler: Reconciler,
    ) -> None:  # fmt: skip
        csrf = await sign_in(client, org)
        done = await create(client, csrf, name="done", shape="medium")
        await reconciler.converge()
        clock.advance(86_400)
        csrf = await sign_in(client, org)  # the session of yesterday has expired
        released = await client.post(
            f"/tenancies/{done}/release", data={"_csrf": csrf}, headers=HTML
        )
        await reconciler.converge()
        clock.advance(2 * 86_400)
        csrf = await sign_in(client, org)
        await create(client, csrf, name="now")
        await reconciler.converge()

        page = await client.get("/tenancies", headers=HTML)

        assert "Release requested" in text_of(released.text)
        assert "Active 1 ready to use" in text_of(page.text)
        assert "GPUs held 1 by tenancies not yet released" in text_of(page.text)
        [series] = chart_data(page.text, "chart-gpus-held")["series"]
        assert series["values"] == [0] * 10 + [2, 2, 0, 1]  # held two days, gone, then one

    async def test_filters_by_state_kind_and_region_and_refuse_unknown_values(
        self,
        client: Client,
        org: Tenant,
        fleet: list[str],
        reconciler: Reconciler,
    ) -> None:
        csrf = await sign_in(client, org)
        await create(client, csrf, name="running")
        await reconciler.converge()
        await create(client, csrf, name="booting", kind="kubernetes")

        active = await client.get("/tenancies?state=active", headers=HTML)
        kubernetes = await client.get("/tenancies?kind=kubernetes", headers=HTML)
        elsewhere = await client.get("/tenancies?region=se-north-1", headers=HTML)
        bad = await client.get("/tenancies?state=sleeping", headers=HTML)

        assert [
            r.split()[0] for r in table_rows(active.text, "Tenancies, filtered, newest first")
        ] == ["running"]
        assert [
            r.split()[0] for r in table_rows(kubernetes.text, "Tenancies, filtered, newest first")
        ] == ["booting"]
        assert "No tenancy matches these filters." in text_of(elsewhere.text)
        assert bad.status_code == 400
        assert 'id="filter-state-error"' in bad.text

    async def test_billing_may_not_see_tenancies_and_auditors_cannot_create(
        self, client: Client, org: Tenant
    ) -> None:
        await sign_in(client, org, TenantRole.AUDITOR)
        auditor_list = await client.get("/tenancies", headers=HTML)
        auditor_form = await client.get("/tenancies/new", headers=HTML)
        client.cookies.clear()
        await sign_in(client, org, TenantRole.BILLING)
        billing_list = await client.get("/tenancies", headers=HTML)

        assert auditor_list.status_code == 200
        assert 'href="/tenancies/new"' not in auditor_list.text
        assert auditor_form.status_code == 403
        assert billing_list.status_code == 403


class TestCreateForm:
    async def test_the_form_offers_allowed_regions_and_their_shapes_with_prices(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        await sign_in(client, org)
        page = await client.get("/tenancies/new", headers=HTML)

        assert page.status_code == 200
        shapes = table_rows(page.text, "Shapes on offer, by region, cheapest first")
        assert [s.split(" in ")[0] for s in shapes] == ["small", "medium"]
        assert "1 x H100 80 GiB · PCIe 3.10 CAD" in shapes[0]
        assert "2 x H100 160 GiB · NVLink 6.00 CAD" in shapes[1]
        assert "Any region my residency policy allows (cheapest first)" in page.text
        assert 'value="ca-qc-1"' in page.text
        assert 'value="us-east-1"' in page.text
        assert 'name="_csrf"' in page.text
        assert '<script src="/static/js/tenancies.js" defer></script>' in page.text
        assert "<script>" not in page.text  # no inline script under the CSP

    async def test_creating_from_a_shape_goes_to_the_tenancy_with_its_progress(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await create(
            client, csrf, shape="medium", region="any", labels="team=nlp\nstage=dev",
            ssh_public_keys=SSH_KEY, idle_release_minutes="30",
        )  # fmt: skip

        page = await client.get(f"/tenancies/{tenancy_id}?done=created", headers=HTML)

        text = text_of(page.text)
        assert page.status_code == 200
        assert "Tenancy requested: residency, quota and placement checks passed." in text
        assert progress(page.text) == {
            "Requested": "done", "Placing": "done", "Provisioning": "current", "Active": "todo",
            "Releasing": "todo", "Cleaning": "todo", "Released": "todo",
        }  # fmt: skip
        assert 'aria-current="step"' in page.text
        assert "data-working" in page.text  # the page follows it until it settles
        assert "simulated data centre" in text
        assert "team=nlp" in text
        assert "stage=dev" in text
        assert "1 key" in text
        assert "After 30 minutes without a workload" in text
        assert "placed 2 GPU(s) in ca-qc-1 on qc-h100-" in text

    async def test_a_custom_size_needs_a_gpu_model_and_count(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        csrf = await sign_in(client, org)
        missing = await client.post(
            "/tenancies",
            data={"_csrf": csrf, "name": "x", "kind": "vm", "region": "ca-qc-1", "shape": "",
                  "gpus_per_node": "2"},
            headers=HTML,
        )  # fmt: skip
        tenancy_id = await create(client, csrf, shape="", kind="vm", gpu_model="h100",
                                  gpus_per_node="4", node_count="2")  # fmt: skip
        page = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)

        assert missing.status_code == 400
        assert 'id="t-gpu_model-error"' in missing.text
        assert "2 nodes x 4 x H100" in text_of(page.text)
        assert len(table_rows(page.text, "Nodes and GPUs this tenancy holds")) == 2

    async def test_any_gpu_of_a_class_can_be_chosen_for_a_custom_size(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        csrf = await sign_in(client, org)
        form = await client.get("/tenancies/new", headers=HTML)
        assert 'value="class:hopper"' in form.text
        assert "Any Hopper GPU (H100, H200)" in text_of(form.text)
        tenancy_id = await create(client, csrf, shape="", kind="vm", gpu_model="class:hopper",
                                  gpus_per_node="2")  # fmt: skip
        page = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)
        assert "2 x H100" in text_of(page.text)  # the fleet's Hopper nodes are H100s

    async def test_field_errors_are_shown_next_to_their_fields_keeping_what_was_typed(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        csrf = await sign_in(client, org)
        page = await client.post(
            "/tenancies",
            data={"_csrf": csrf, "name": "Not A Name", "kind": "slurm", "region": "ca-qc-1",
                  "shape": "small", "labels": "no equals sign"},
            headers=HTML,
        )  # fmt: skip

        assert page.status_code == 400
        assert 'id="t-labels-error"' in page.text
        assert "The tenancy was not created" in text_of(page.text)
        assert 'value="Not A Name"' in page.text

    async def test_insufficient_capacity_shows_what_would_fit(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        csrf = await sign_in(client, org)
        page = await client.post(
            "/tenancies",
            data={"_csrf": csrf, "name": "huge", "kind": "slurm", "region": "ca-qc-1",
                  "shape": "", "gpu_model": "h100", "gpus_per_node": "8", "node_count": "3"},
            headers=HTML,
        )  # fmt: skip

        assert page.status_code == 409
        extra = re.search(r'id="problem-extra">(.*?)</div>', page.text, re.S)
        assert extra, "no capacity explanation"
        assert "Not enough free capacity" in text_of(extra.group(1))
        assert "What would fit instead:" in text_of(extra.group(1))
        assert "<li>" in extra.group(1)

    async def test_a_region_the_residency_policy_refuses_names_the_rule(
        self, client: Client, org: Tenant, fleet: list[str], db: AsyncSession, clock: OffsetClock
    ) -> None:
        await make_fleet(db, clock, region="us-east-1", model="a100", nodes=1, prefix="us")
        await residency.seed_policy(
            db, clock, org.org_id, PolicyChange(template="canada-sovereign")
        )
        await db.commit()
        csrf = await sign_in(client, org)

        form_page = await client.get("/tenancies/new", headers=HTML)
        refused = await client.post(
            "/tenancies",
            data={"_csrf": csrf, "name": "abroad", "kind": "slurm", "region": "us-east-1",
                  "shape": "", "gpu_model": "a100", "gpus_per_node": "1"},
            headers=HTML,
        )  # fmt: skip

        assert 'value="us-east-1"' not in form_page.text  # only allowed regions are offered
        assert refused.status_code == 403
        assert "Refused by your residency policy" in text_of(refused.text)
        assert re.search(r"The deciding rule is <code>[^<]+</code>", refused.text)

    async def test_a_request_over_quota_shows_the_figures(
        self, client: Client, org: Tenant, fleet: list[str], db: AsyncSession, clock: OffsetClock
    ) -> None:
        await make_quota(db, clock, max_gpus=2)
        await db.commit()
        csrf = await sign_in(client, org)
        await create(client, csrf, name="one", shape="small")
        page = await client.post(
            "/tenancies",
            data={"_csrf": csrf, "name": "two", "kind": "slurm", "region": "ca-qc-1",
                  "shape": "medium"},
            headers=HTML,
        )  # fmt: skip

        assert page.status_code == 409
        assert "Limit 2 GPUs; your organization holds 1" in text_of(page.text)
        assert "1 of 2 GPUs held" in text_of(page.text)

    async def test_the_suggestion_helper_preselects_the_cheapest_fitting_shape(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        await sign_in(client, org)
        page = await client.get(
            "/tenancies/new?gpu_memory_gib=150&gpu_count=2&interconnect=nvlink", headers=HTML
        )
        nothing = await client.get("/tenancies/new?gpu_memory_gib=5000&gpu_count=8", headers=HTML)

        suggestion = re.search(r'id="suggestion">(.*?)</div>', page.text, re.S)
        assert suggestion
        assert "Suggested: medium in ca-qc-1" in text_of(suggestion.group(1))
        assert re.search(
            r'id="shape-ca-qc-1-medium" value="medium" data-region="ca-qc-1" checked', page.text
        )
        assert "No shape in" in text_of(nothing.text)

    async def test_a_form_without_the_csrf_token_is_refused(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        await sign_in(client, org)
        response = await client.post(
            "/tenancies",
            data={"name": "x", "kind": "slurm", "region": "ca-qc-1", "shape": "small"},
            headers=HTML,
        )
        listing = await client.get("/tenancies", headers=HTML)

        assert response.status_code == 403
        assert "No tenancies yet." in text_of(listing.text)


class TestTenancyPage:
    async def test_an_active_tenancy_shows_access_facts_allocations_and_its_timeline(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await create(client, csrf, shape="medium")
        await reconciler.converge()

        page = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)

        text = text_of(page.text)
        assert progress(page.text)["Active"] == "current"
        assert "data-working" not in page.text  # settled: nothing to follow
        assert "Access sbatch" in text
        assert "Simulated true" in text
        [allocation] = table_rows(page.text, "Nodes and GPUs this tenancy holds")
        assert re.fullmatch(r"qc-h100-0\d 0, 1 100%", allocation)
        timeline = re.findall(r"badge--tenancy-(\w+)\"", page.text.split('id="events-title"')[1])
        assert timeline == ["active", "provisioning", "placing"]  # newest first
        assert "Release tenancy" in page.text
        assert "Resize" in page.text

    async def test_the_live_part_is_served_alone_for_the_page_to_poll(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await create(client, csrf)

        live = await client.get(f"/tenancies/{tenancy_id}/live", headers=HTML)

        assert live.status_code == 200
        assert "<html" not in live.text
        assert "app-nav" not in live.text
        assert f'data-live-url="/tenancies/{tenancy_id}/live"' in live.text
        assert 'data-state="provisioning"' in live.text
        assert "data-working" in live.text
        assert live.headers["cache-control"] == "no-store"

    async def test_resize_from_the_page_applies_the_new_size(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await create(client, csrf)
        await reconciler.converge()

        resized = await client.post(
            f"/tenancies/{tenancy_id}/resize",
            data={"_csrf": csrf, "gpus_per_node": "4", "node_count": "1"},
            headers=HTML,
            follow_redirects=False,
        )
        pending = await client.get(resized.headers["location"], headers=HTML)
        await reconciler.converge()
        done = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)

        assert resized.status_code == 303
        assert "Resize requested" in text_of(pending.text)
        assert "Resizing" in text_of(pending.text)
        assert "data-working" in pending.text
        assert "4 x H100" in text_of(done.text)
        [allocation] = table_rows(done.text, "Nodes and GPUs this tenancy holds")
        assert "0, 1, 2, 3" in allocation or len(allocation.split(",")) == 4
        assert "data-working" not in done.text

    async def test_a_refused_resize_says_why(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await create(client, csrf, kind="bare_metal", shape="", gpu_model="h100",
                                  gpus_per_node="8", image="ubuntu-24.04")  # fmt: skip
        await reconciler.converge()

        page = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)
        refused = await client.post(
            f"/tenancies/{tenancy_id}/resize",
            data={"_csrf": csrf, "gpus_per_node": "4"},
            headers=HTML,
        )

        assert "cannot be resized in place" in text_of(page.text)
        assert refused.status_code == 409
        assert "cannot be resized in place" in text_of(refused.text)

    async def test_release_from_the_page_ends_released_with_nothing_held(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await create(client, csrf)
        await reconciler.converge()
        active = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)

        released = await client.post(
            f"/tenancies/{tenancy_id}/release",
            data={"_csrf": csrf},
            headers=HTML,
            follow_redirects=False,
        )
        releasing = await client.get(released.headers["location"], headers=HTML)
        await reconciler.converge()
        page = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)

        assert released.status_code == 303
        assert "Release requested" in text_of(releasing.text)
        assert progress(releasing.text)["Releasing"] == "current"
        assert 'data-confirm="Release train-1? Its workloads stop' in active.text
        assert set(progress(page.text).values()) == {"done"}
        assert "No GPUs held." in text_of(page.text)
        assert "Release tenancy" not in page.text
        assert "data-working" not in page.text

    async def test_a_failed_provisioning_shows_the_reason(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await create(client, csrf, kind="bare_metal", shape="", gpu_model="h100",
                                  gpus_per_node="8", image="windows-95")  # fmt: skip
        await reconciler.converge()

        page = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)

        steps = progress(page.text)
        assert steps["Failed"] == "failed"
        assert steps["Active"] == "skipped"
        assert "Failed: provisioning failed:" in text_of(page.text)
        assert "windows-95" in text_of(page.text)

    async def test_another_organization_gets_404_for_every_tenancy_route(
        self, client: Client, org: Tenant, fleet: list[str], db: AsyncSession
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await create(client, csrf)
        other = await make_org(db, roles=(TenantRole.ADMIN,))
        await db.commit()
        client.cookies.clear()
        other_csrf = await sign_in(client, other, TenantRole.ADMIN)

        answers = [
            (await client.get(f"/tenancies/{tenancy_id}", headers=HTML)).status_code,
            (await client.get(f"/tenancies/{tenancy_id}/live", headers=HTML)).status_code,
            (
                await client.post(
                    f"/tenancies/{tenancy_id}/resize",
                    data={"_csrf": other_csrf, "gpus_per_node": "2"},
                    headers=HTML,
                )
            ).status_code,
            (
                await client.post(
                    f"/tenancies/{tenancy_id}/release", data={"_csrf": other_csrf}, headers=HTML
                )
            ).status_code,
        ]
        listing = await client.get("/tenancies", headers=HTML)

        assert answers == [404, 404, 404, 404]
        assert tenancy_id not in listing.text
