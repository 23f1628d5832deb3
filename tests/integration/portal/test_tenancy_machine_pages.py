"""Reaching a running tenancy from its page: a VM's power buttons and console link, a
Kubernetes namespace's Access panel (kubeconfig shown once, rotation), the developer
workspace on the create form and the page; what an auditor sees, and what a form without
its CSRF token gets."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import pytest
import yaml
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import TenancyKind
from control_plane.tenancies.drivers.sim import SimDriver
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.capacity import make_fleet, make_shape
from tests.fixtures.factories import Tenant, make_org
from tests.fixtures.reconciler import app_reconciler
from tests.integration.portal.test_tenancy_pages import HTML, Client, create, sign_in, text_of


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One reconciler pass takes a simulated tenancy from provisioning to active."""
    return settings.model_copy(update={"sim_boot_polls": 1})


@pytest.fixture
async def org(db: AsyncSession) -> Tenant:
    tenant = await make_org(db)
    await db.commit()
    return tenant


@pytest.fixture
async def fleet(db: AsyncSession, clock: OffsetClock) -> list[str]:
    nodes = await make_fleet(db, clock, nodes=2, gpus_per_node=8, prefix="qc-h100")
    await make_shape(db, clock, region="ca-qc-1", name="small", model="h100", gpus_per_node=1,
                     price="3.10")  # fmt: skip
    await db.commit()
    return nodes


@pytest.fixture
async def reconciler(app: Litestar, clock: OffsetClock) -> AsyncIterator[Reconciler]:
    async with app_reconciler(app, clock, time_passes=False) as reconciler:
        yield reconciler


async def active(
    client: Client, csrf: str, reconciler: Reconciler, kind: str, **fields: str
) -> str:
    """A tenancy of ``kind`` made through the create form and brought up."""
    tenancy_id = await create(client, csrf, name=f"{kind.replace('_', '-')}-1", kind=kind,
                              **fields)  # fmt: skip
    await reconciler.converge()
    return tenancy_id


def sim(reconciler: Reconciler, kind: TenancyKind) -> SimDriver:
    driver = reconciler.drivers.for_tenancy("ca-qc-1", kind)
    assert isinstance(driver, SimDriver)
    return driver


def section(page: str, title_id: str) -> str:
    """The HTML of the section headed by ``title_id`` ("" when there is none)."""
    match = re.search(rf'<section[^>]*aria-labelledby="{title_id}".*?</section>', page, re.S)
    return match.group(0) if match else ""


def error_notice(page: str) -> str:
    match = re.search(r'<div class="alert alert--error" role="alert"[^>]*>(.*?)</div>', page, re.S)
    assert match, "no error notice"
    return text_of(match.group(1))


def revealed_value(page: str) -> str:
    match = re.search(r'<textarea[^>]*id="revealed-value"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, "no kubeconfig shown"
    return html.unescape(match.group(1))


class TestVirtualMachine:
    async def test_an_active_vm_offers_power_and_console_buttons_with_csrf(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await active(client, csrf, reconciler, "vm")

        page = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)

        machine = section(page.text, "machine-title")
        assert machine, "no Machine panel"
        for action in ("start", "stop", "reboot"):
            assert f'name="action" value="{action}"' in machine
        assert machine.count(f'action="/tenancies/{tenancy_id}/power"') == 3
        assert f'action="/tenancies/{tenancy_id}/console"' in machine
        assert machine.count('name="_csrf"') == 4
        assert 'data-confirm="Stop vm-1?' in machine
        assert "Open console" in text_of(machine)
        assert section(page.text, "access-title") == ""  # no kubeconfig on a VM

    async def test_stop_start_and_reboot_redirect_with_a_notice_and_reach_the_machine(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await active(client, csrf, reconciler, "vm")

        notices = []
        for action in ("stop", "start", "reboot"):
            answer = await client.post(
                f"/tenancies/{tenancy_id}/power", data={"_csrf": csrf, "action": action},
                headers=HTML, follow_redirects=False,
            )  # fmt: skip
            assert answer.status_code == 303, text_of(answer.text)[:400]
            page = await client.get(answer.headers["location"], headers=HTML)
            notices.append(re.search(r'alert--success" role="status">(.*?)</div>', page.text, re.S))

        assert [text_of(n.group(1)).split(":")[0] for n in notices if n] == [
            "Stopped", "Started", "Rebooted",
        ]  # fmt: skip
        effects = sim(reconciler, TenancyKind.VM).effects("ca-qc-1", tenancy_id)
        assert (effects["stopped"], effects["started"], effects["rebooted"]) == (1, 1, 1)
        assert "simulated VM is off (stop)" in text_of(page.text)  # on the timeline

    async def test_the_console_link_is_on_the_answer_only_and_never_cached(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await active(client, csrf, reconciler, "vm")

        answer = await client.post(
            f"/tenancies/{tenancy_id}/console", data={"_csrf": csrf}, headers=HTML,
            follow_redirects=False,
        )  # fmt: skip
        later = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)

        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        link = section(answer.text, "console-title")
        url = re.search(r'id="console-url">([^<]+)</code>', link)
        assert url
        assert url.group(1).startswith(f"https://console.sim.invalid/{tenancy_id}?")
        assert "token=" in url.group(1)
        assert "Valid until" in text_of(link)
        assert 'rel="noopener noreferrer"' in link
        assert "token=" not in later.text
        assert "console.sim.invalid" not in later.text

    async def test_a_refused_action_is_the_pages_error_notice(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        slurm_id = await active(client, csrf, reconciler, "slurm")
        vm_id = await active(client, csrf, reconciler, "vm", shape="", gpu_model="h100",
                             gpus_per_node="1")  # fmt: skip

        slurm_page = await client.get(f"/tenancies/{slurm_id}", headers=HTML)
        refused = await client.post(
            f"/tenancies/{slurm_id}/power", data={"_csrf": csrf, "action": "stop"}, headers=HTML
        )
        nonsense = await client.post(
            f"/tenancies/{vm_id}/power", data={"_csrf": csrf, "action": "explode"}, headers=HTML
        )

        assert section(slurm_page.text, "machine-title") == ""  # no buttons it cannot honour
        assert refused.status_code == 409
        assert "does not offer power actions" in error_notice(refused.text)
        assert nonsense.status_code == 400
        assert "Choose start, stop or reboot." in error_notice(nonsense.text)


class TestKubernetesAccess:
    async def test_the_access_panel_shows_the_credential_status_and_its_buttons(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await active(client, csrf, reconciler, "kubernetes")

        page = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)

        access = text_of(section(page.text, "access-title"))
        assert "Credential kubeconfig" in access
        assert re.search(r"Issued \d{4}-\d\d-\d\d \d\d:\d\d UTC", access)
        assert re.search(r"Expires \d{4}-\d\d-\d\d \d\d:\d\d UTC", access)
        assert "Shown Not yet: it can be shown once" in access
        assert "Rotations 0" in access
        assert "Show kubeconfig (once)" in access
        assert "Rotate" in access
        assert 'data-confirm="Rotate the kubeconfig of kubernetes-1?' in page.text
        assert section(page.text, "machine-title") == ""  # no power on a namespace

    async def test_the_kubeconfig_is_shown_once_then_the_page_says_to_rotate(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await active(client, csrf, reconciler, "kubernetes")

        first = await client.post(
            f"/tenancies/{tenancy_id}/credential/reveal", data={"_csrf": csrf}, headers=HTML
        )
        second = await client.post(
            f"/tenancies/{tenancy_id}/credential/reveal", data={"_csrf": csrf}, headers=HTML
        )
        page = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)

        assert first.status_code == 200
        assert first.headers["cache-control"] == "no-store"
        assert "Copy it now: it will not be shown again." in text_of(first.text)
        config = yaml.safe_load(revealed_value(first.text))
        token = config["users"][0]["user"]["token"]
        assert token in sim(reconciler, TenancyKind.KUBERNETES).tokens("ca-qc-1", tenancy_id)
        assert "readonly" in first.text
        assert "KUBECONFIG=" in text_of(first.text)
        assert "kubeconfig shown (not kept)" in text_of(first.text)  # on the timeline
        assert "Show kubeconfig (once)" not in first.text  # already shown, on this answer too
        assert second.status_code == 409
        assert "rotate it to get a new one" in error_notice(second.text)
        assert token not in second.text
        assert token not in page.text
        assert "Shown Yes" in text_of(section(page.text, "access-title"))
        assert "Show kubeconfig (once)" not in page.text
        assert "kubeconfig shown (not kept)" in text_of(page.text)  # on the timeline

    async def test_rotate_invalidates_earlier_kubeconfigs_and_a_new_one_can_be_shown(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await active(client, csrf, reconciler, "kubernetes")
        first = await client.post(
            f"/tenancies/{tenancy_id}/credential/reveal", data={"_csrf": csrf}, headers=HTML
        )
        old_token = yaml.safe_load(revealed_value(first.text))["users"][0]["user"]["token"]

        rotated = await client.post(
            f"/tenancies/{tenancy_id}/credential/rotate", data={"_csrf": csrf}, headers=HTML,
            follow_redirects=False,
        )  # fmt: skip
        page = await client.get(rotated.headers["location"], headers=HTML)
        again = await client.post(
            f"/tenancies/{tenancy_id}/credential/reveal", data={"_csrf": csrf}, headers=HTML
        )

        assert rotated.status_code == 303
        assert rotated.headers["location"].endswith("?done=rotated")
        assert "Kubeconfig rotated: every earlier one has stopped working." in text_of(page.text)
        access = text_of(section(page.text, "access-title"))
        assert "Rotations 1" in access
        assert "Shown Not yet" in access
        new_token = yaml.safe_load(revealed_value(again.text))["users"][0]["user"]["token"]
        accepted = sim(reconciler, TenancyKind.KUBERNETES).tokens("ca-qc-1", tenancy_id)
        assert new_token in accepted
        assert old_token not in accepted
        assert "rotated: earlier ones no longer work" in text_of(page.text)  # timeline


class TestWorkspace:
    async def test_the_create_form_offers_a_jupyter_workspace_idle_after_60_by_default(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        await sign_in(client, org)
        page = await client.get("/tenancies/new", headers=HTML)

        assert 'type="checkbox" name="workspace" value="on" id="t-workspace-on"' in page.text
        assert re.search(r'id="t-workspace_idle_minutes" name="workspace_idle_minutes" '
                         r'type="number" value="60"', page.text)  # fmt: skip
        assert "Developer workspace (Jupyter)" in text_of(page.text)

    async def test_a_kubernetes_tenancy_with_a_workspace_shows_it_once_active(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await active(client, csrf, reconciler, "kubernetes", workspace="on",
                                  workspace_idle_minutes="30")  # fmt: skip

        page = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)

        workspace = text_of(section(page.text, "workspace-title"))
        assert "Workspace Jupyter on this tenancy's GPUs" in workspace
        assert "Idle shutdown After 30 minutes without activity" in workspace
        assert "reach it inside the namespace with your kubeconfig" in workspace

    async def test_without_the_box_ticked_there_is_no_workspace(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        tenancy_id = await active(client, csrf, reconciler, "kubernetes",
                                  workspace_idle_minutes="30")  # fmt: skip

        page = await client.get(f"/tenancies/{tenancy_id}", headers=HTML)

        assert section(page.text, "workspace-title") == ""

    async def test_an_idle_time_out_of_range_is_shown_next_to_its_field(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        csrf = await sign_in(client, org)
        page = await client.post(
            "/tenancies",
            data={"_csrf": csrf, "name": "ws", "kind": "kubernetes", "region": "ca-qc-1",
                  "shape": "small", "workspace": "on", "workspace_idle_minutes": "2"},
            headers=HTML,
        )  # fmt: skip

        assert page.status_code == 400
        error = re.search(r'id="t-workspace_idle_minutes-error">(.*?)</p>', page.text, re.S)
        assert error
        assert "from 5 to 1440" in text_of(error.group(1))
        assert re.search(r'id="t-workspace-on"[^>]* checked', page.text)  # kept as typed

    async def test_a_workspace_on_another_kind_is_refused_next_to_the_checkbox(
        self, client: Client, org: Tenant, fleet: list[str]
    ) -> None:
        csrf = await sign_in(client, org)
        page = await client.post(
            "/tenancies",
            data={"_csrf": csrf, "name": "ws", "kind": "vm", "region": "ca-qc-1",
                  "shape": "small", "workspace": "on", "workspace_idle_minutes": "60"},
            headers=HTML,
        )  # fmt: skip

        assert page.status_code == 400  # the service's InvalidInput
        assert 'id="t-workspace-error"' in page.text
        assert "not available for kind vm" in text_of(page.text)
        assert "A workspace runs on a Kubernetes tenancy" in error_notice(page.text)


class TestWhoMayAct:
    async def test_an_auditor_sees_the_status_and_no_buttons(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        vm_id = await active(client, csrf, reconciler, "vm")
        k8s_id = await active(client, csrf, reconciler, "kubernetes", shape="", gpu_model="h100",
                              gpus_per_node="1", workspace="on")  # fmt: skip
        client.cookies.clear()
        auditor_csrf = await sign_in(client, org, TenantRole.AUDITOR)

        vm_page = await client.get(f"/tenancies/{vm_id}", headers=HTML)
        k8s_page = await client.get(f"/tenancies/{k8s_id}", headers=HTML)
        tries = [
            await client.post(f"/tenancies/{vm_id}/power",
                              data={"_csrf": auditor_csrf, "action": "stop"}, headers=HTML),
            await client.post(f"/tenancies/{vm_id}/console", data={"_csrf": auditor_csrf},
                              headers=HTML),
            await client.post(f"/tenancies/{k8s_id}/credential/reveal",
                              data={"_csrf": auditor_csrf}, headers=HTML),
            await client.post(f"/tenancies/{k8s_id}/credential/rotate",
                              data={"_csrf": auditor_csrf}, headers=HTML),
        ]  # fmt: skip

        machine = section(vm_page.text, "machine-title")
        access = section(k8s_page.text, "access-title")
        assert "tenancies:write" in text_of(machine)
        assert "<form" not in machine
        assert "Shown Not yet" in text_of(access)
        assert "Rotations 0" in text_of(access)
        assert "<form" not in access
        assert "Idle shutdown After 60 minutes" in text_of(k8s_page.text)
        assert [t.status_code for t in tries] == [403, 403, 403, 403]
        assert "stopped" not in sim(reconciler, TenancyKind.VM).effects("ca-qc-1", vm_id)

    async def test_forms_without_the_csrf_token_are_refused_and_change_nothing(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler
    ) -> None:
        csrf = await sign_in(client, org)
        vm_id = await active(client, csrf, reconciler, "vm")
        k8s_id = await active(client, csrf, reconciler, "kubernetes", shape="", gpu_model="h100",
                              gpus_per_node="1")  # fmt: skip

        answers = [
            await client.post(f"/tenancies/{vm_id}/power", data={"action": "stop"},
                              headers=HTML),
            await client.post(f"/tenancies/{vm_id}/console", data={}, headers=HTML),
            await client.post(f"/tenancies/{k8s_id}/credential/reveal",
                              data={"_csrf": "forged"}, headers=HTML),
            await client.post(f"/tenancies/{k8s_id}/credential/rotate", data={}, headers=HTML),
        ]  # fmt: skip
        page = await client.get(f"/tenancies/{k8s_id}", headers=HTML)

        assert [a.status_code for a in answers] == [403, 403, 403, 403]
        assert "console.sim.invalid" not in answers[1].text
        assert "apiVersion" not in answers[2].text
        assert "stopped" not in sim(reconciler, TenancyKind.VM).effects("ca-qc-1", vm_id)
        access = text_of(section(page.text, "access-title"))
        assert "Shown Not yet" in access
        assert "Rotations 0" in access

    async def test_another_organization_gets_404_for_every_machine_route(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler,
        db: AsyncSession,
    ) -> None:  # fmt: skip
        csrf = await sign_in(client, org)
        vm_id = await active(client, csrf, reconciler, "vm")
        k8s_id = await active(client, csrf, reconciler, "kubernetes", shape="", gpu_model="h100",
                              gpus_per_node="1")  # fmt: skip
        other = await make_org(db, roles=(TenantRole.ADMIN,))
        await db.commit()
        client.cookies.clear()
        other_csrf = await sign_in(client, other, TenantRole.ADMIN)

        answers = [
            await client.post(f"/tenancies/{vm_id}/power",
                              data={"_csrf": other_csrf, "action": "stop"}, headers=HTML),
            await client.post(f"/tenancies/{vm_id}/console", data={"_csrf": other_csrf},
                              headers=HTML),
            await client.post(f"/tenancies/{k8s_id}/credential/reveal",
                              data={"_csrf": other_csrf}, headers=HTML),
            await client.post(f"/tenancies/{k8s_id}/credential/rotate",
                              data={"_csrf": other_csrf}, headers=HTML),
        ]  # fmt: skip

        assert [a.status_code for a in answers] == [404, 404, 404, 404]
        assert "apiVersion" not in answers[2].text
