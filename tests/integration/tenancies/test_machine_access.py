"""Reaching a running tenancy: VM power and console, the Kubernetes kubeconfig (stored
encrypted, shown once, rotated on request), operator consoles only under a grant."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from litestar import Litestar
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.models import AuditEntryRow
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.sovereignty.keys.models import Secret
from control_plane.tenancies.drivers.base import RetryableError, TenancyKind
from control_plane.tenancies.drivers.sim import SimDriver
from control_plane.tenancies.models import GpuAllocation, Tenancy
from control_plane.tenancies.reads import allocation_of
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.factories import Tenant, make_user, signed_in
from tests.integration.tenancies.conftest import Client, create, tenancies_url


async def active(
    client: Client, org: Tenant, auth: dict[str, str], reconciler: Reconciler, **body: Any
) -> dict[str, Any]:
    response = await create(client, org, auth, **body)
    assert response.status_code == 201, response.text
    await reconciler.converge()
    tenancy = await client.get(f"{tenancies_url(org)}/{response.json()['id']}", headers=auth)
    assert tenancy.json()["state"] == "active", tenancy.text
    return dict(tenancy.json())


def url(org: Tenant, tenancy: dict[str, Any], tail: str) -> str:
    return f"{tenancies_url(org)}/{tenancy['id']}/{tail}"


def sim(reconciler: Reconciler, kind: TenancyKind) -> SimDriver:
    driver = reconciler.drivers.for_tenancy("ca-qc-1", kind)
    assert isinstance(driver, SimDriver)
    return driver


class TestVmPowerAndConsole:
    async def test_stop_start_reboot_reach_the_machine_and_the_timeline(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler,
    ) -> None:  # fmt: skip
        vm = await active(client, org, auth, reconciler, kind="vm")
        for action in ("stop", "stop", "start", "reboot"):
            response = await client.post(url(org, vm, "power"), json={"action": action},
                                         headers=auth)  # fmt: skip
            assert response.status_code == 200, response.text
            assert response.json()["action"] == action
        effects = sim(reconciler, TenancyKind.VM).effects("ca-qc-1", vm["id"])
        assert (effects["stopped"], effects["started"], effects["rebooted"]) == (1, 1, 1)
        events = (await client.get(url(org, vm, "events"), headers=auth)).json()["items"]
        assert any("off (stop)" in e["detail"] for e in events)
        stopped = await client.post(url(org, vm, "power"), json={"action": "stop"}, headers=auth)
        assert stopped.status_code == 200
        facts = (await client.get(f"{tenancies_url(org)}/{vm['id']}", headers=auth)).json()
        assert facts["facts"]["power"] == "off"

    async def test_an_unknown_action_is_a_clear_422(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler,
    ) -> None:  # fmt: skip
        vm = await active(client, org, auth, reconciler, kind="vm")
        response = await client.post(url(org, vm, "power"), json={"action": "explode"},
                                     headers=auth)  # fmt: skip
        assert response.status_code == 400 or response.status_code == 422
        assert "action" in response.text

    async def test_power_on_a_slurm_tenancy_is_refused_by_name(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler,
    ) -> None:  # fmt: skip
        slurm = await active(client, org, auth, reconciler, kind="slurm")
        response = await client.post(url(org, slurm, "power"), json={"action": "stop"},
                                     headers=auth)  # fmt: skip
        assert response.status_code == 409
        assert "does not offer power actions" in response.json()["detail"]

    async def test_the_tenant_gets_a_console_link_that_expires(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler,
    ) -> None:  # fmt: skip
        vm = await active(client, org, auth, reconciler, kind="vm")
        response = await client.post(url(org, vm, "console"), headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["protocol"] == "vnc"
        assert "token=" in body["url"]
        assert body["expires_at"] > vm["activated_at"]

    async def test_an_auditor_cannot_open_the_console(
        self, client: Client, org: Tenant, fleet: list[str], reconciler: Reconciler,
        auth: dict[str, str],
    ) -> None:  # fmt: skip
        vm = await active(client, org, auth, reconciler, kind="vm")
        auditor = await signed_in(client, org.accounts[TenantRole.AUDITOR])
        response = await client.post(url(org, vm, "console"), headers=auditor)
        assert response.status_code == 403

    async def test_a_vm_allocation_carries_pci_addresses_and_numa_layout(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler, db: AsyncSession,
    ) -> None:  # fmt: skip
        vm = await active(client, org, auth, reconciler, kind="vm", gpus_per_node=2)
        tenancy = await db.get(Tenancy, vm["id"])
        assert tenancy is not None
        rows = (
            (await db.execute(select(GpuAllocation).where(GpuAllocation.tenancy_id == vm["id"])))
            .scalars()
            .all()
        )
        allocation = await allocation_of(db, tenancy, rows)
        node = allocation.nodes[0]
        assert len(node.gpu_pci_addresses) == 2
        assert all(a is not None and a.startswith("0000:") for a in node.gpu_pci_addresses)
        assert node.gpu_numa_nodes == tuple(i * 2 // 8 for i in node.gpu_indices)
        assert node.numa_cpus == {0: "0-31", 1: "32-63"}


class TestOperatorConsole:
    async def test_an_operator_needs_an_approved_grant_and_the_use_is_ledgered(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler, db: AsyncSession,
    ) -> None:  # fmt: skip
        vm = await active(client, org, auth, reconciler, kind="vm")
        operator = await make_user(db, provider_role=ProviderRole.OPERATOR, home_country="CA")
        await db.commit()
        op = await signed_in(client, operator)
        console = f"/api/v1/operator/orgs/{org.org_id}/tenancies/{vm['id']}/console"
        purpose = {"purpose": "ticket 88: VM does not boot"}

        refused = await client.post(console, json=purpose, headers=op)
        assert refused.status_code == 403, refused.text

        ask = {
            "org_id": org.org_id,
            "resource_type": "tenancy",
            "resource_id": vm["id"],
            "reason_code": "customer_initiated_support",
            "justification": "Ticket 88: customer VM does not boot",
            "duration_minutes": 30,
        }
        request = await client.post("/api/v1/access-requests", json=ask, headers=op)
        assert request.status_code == 201, request.text
        admin = await signed_in(client, org.accounts[TenantRole.OWNER])
        approve = await client.post(
            f"/api/v1/orgs/{org.org_id}/access-requests/{request.json()['id']}/approve",
            headers=admin,
        )
        assert approve.status_code == 200, approve.text

        allowed = await client.post(console, json=purpose, headers=op)
        assert allowed.status_code == 200, allowed.text
        await db.rollback()
        outcomes = (
            (
                await db.execute(
                    select(AuditEntryRow.outcome).where(
                        AuditEntryRow.org_id == org.org_id, AuditEntryRow.action == "access.use"
                    )
                )
            )
            .scalars()
            .all()
        )
        assert sorted(outcomes) == ["allowed", "denied"]

    async def test_the_use_is_committed_before_the_host_is_asked(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler, db: AsyncSession, monkeypatch: pytest.MonkeyPatch, app: Litestar,
    ) -> None:  # fmt: skip
        """The host may take its time (or fail): the organization's ledger is not held
        meanwhile, and the use stays recorded whatever the host answers."""
        vm = await active(client, org, auth, reconciler, kind="vm")
        operator = await make_user(db, provider_role=ProviderRole.OPERATOR, home_country="CA")
        await db.commit()
        op = await signed_in(client, operator)
        ask = {
            "org_id": org.org_id, "resource_type": "tenancy", "resource_id": vm["id"],
            "reason_code": "customer_initiated_support", "justification": "Ticket 90",
            "duration_minutes": 30,
        }  # fmt: skip
        request = await client.post("/api/v1/access-requests", json=ask, headers=op)
        admin = await signed_in(client, org.accounts[TenantRole.OWNER])
        approve = await client.post(
            f"/api/v1/orgs/{org.org_id}/access-requests/{request.json()['id']}/approve",
            headers=admin,
        )
        assert approve.status_code == 200, approve.text
        seen_by_others: list[int] = []

        async def host_down(_self: SimDriver, _allocation: Any, _ttl: int) -> Any:
            async with app.state.sessionmaker() as other:  # sees only what is committed
                uses = await other.execute(
                    select(AuditEntryRow.seq).where(
                        AuditEntryRow.org_id == org.org_id,
                        AuditEntryRow.action == "access.use",
                        AuditEntryRow.outcome == "allowed",
                    )
                )
                seen_by_others.extend(uses.scalars())
            raise RetryableError("the hypervisor does not answer")

        monkeypatch.setattr(SimDriver, "console", host_down)
        console = f"/api/v1/operator/orgs/{org.org_id}/tenancies/{vm['id']}/console"
        failed = await client.post(console, json={"purpose": "ticket 90"}, headers=op)
        assert failed.status_code == 503, failed.text
        assert len(seen_by_others) == 1
        await db.rollback()
        kept = await db.scalar(
            select(func.count()).where(
                AuditEntryRow.org_id == org.org_id, AuditEntryRow.action == "access.use"
            )
        )
        assert kept == 1


class TestKubeconfig:
    async def test_issued_at_provisioning_stored_encrypted_and_shown_once(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler, db: AsyncSession,
    ) -> None:  # fmt: skip
        ns = await active(client, org, auth, reconciler, kind="kubernetes")
        status = await client.get(url(org, ns, "credential"), headers=auth)
        assert status.status_code == 200, status.text
        assert status.json()["shown"] is False
        token = sim(reconciler, TenancyKind.KUBERNETES).tokens("ca-qc-1", ns["id"])[0]
        await db.rollback()
        stored = (await db.execute(select(Secret).where(Secret.org_id == org.org_id))).scalars()
        ciphertexts = [s.ciphertext for s in stored]
        assert len(ciphertexts) == 1
        assert token.encode() not in ciphertexts[0]

        shown = await client.post(url(org, ns, "credential/reveal"), headers=auth)
        assert shown.status_code == 200, shown.text
        config = yaml.safe_load(shown.json()["value"])
        assert config["users"][0]["user"]["token"] == token
        assert config["contexts"][0]["context"]["namespace"] == ns["id"].replace("_", "-")

        again = await client.post(url(org, ns, "credential/reveal"), headers=auth)
        assert again.status_code == 409
        assert "rotate" in again.json()["detail"]
        await db.rollback()
        assert (await db.execute(select(Secret).where(Secret.org_id == org.org_id))).first() is None

    async def test_rotation_invalidates_the_old_token_and_issues_a_new_one(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler,
    ) -> None:  # fmt: skip
        ns = await active(client, org, auth, reconciler, kind="kubernetes")
        old = yaml.safe_load(
            (await client.post(url(org, ns, "credential/reveal"), headers=auth)).json()["value"]
        )["users"][0]["user"]["token"]
        rotated = await client.post(url(org, ns, "credential/rotate"), headers=auth)
        assert rotated.status_code == 200, rotated.text
        assert rotated.json() | {"issued_at": None, "expires_at": None} == {
            "kind": "kubeconfig", "issued_at": None, "expires_at": None, "shown": False,
            "shown_at": None, "rotations": 1,
        }  # fmt: skip
        new = yaml.safe_load(
            (await client.post(url(org, ns, "credential/reveal"), headers=auth)).json()["value"]
        )["users"][0]["user"]["token"]
        accepted = sim(reconciler, TenancyKind.KUBERNETES).tokens("ca-qc-1", ns["id"])
        assert new != old
        assert accepted == [new]

    async def test_reveal_is_ledgered_with_its_justification(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler, db: AsyncSession,
    ) -> None:  # fmt: skip
        ns = await active(client, org, auth, reconciler, kind="kubernetes")
        await client.post(url(org, ns, "credential/reveal"), headers=auth)
        await db.rollback()
        uses = (
            (
                await db.execute(
                    select(AuditEntryRow.decision_ref).where(
                        AuditEntryRow.org_id == org.org_id, AuditEntryRow.action == "keys.use"
                    )
                )
            )
            .scalars()
            .all()
        )
        assert any(ns["id"] in (ref or "") for ref in uses)

    async def test_a_vm_has_no_kubeconfig(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str],
        reconciler: Reconciler,
    ) -> None:  # fmt: skip
        vm = await active(client, org, auth, reconciler, kind="vm")
        assert (await client.get(url(org, vm, "credential"), headers=auth)).status_code == 409
        rotate = await client.post(url(org, vm, "credential/rotate"), headers=auth)
        assert rotate.status_code == 409
        assert "does not offer access credentials" in rotate.json()["detail"]


class TestWorkspace:
    async def test_a_jupyter_workspace_is_recorded_on_a_kubernetes_tenancy(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str]
    ) -> None:
        response = await create(client, org, auth, kind="kubernetes",
                                workspace={"preset": "jupyter", "idle_minutes": 30})  # fmt: skip
        assert response.status_code == 201, response.text
        assert response.json()["workspace"] == {"preset": "jupyter", "idle_minutes": 30}

    async def test_a_workspace_on_another_kind_is_refused_with_the_field(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str]
    ) -> None:
        response = await create(client, org, auth, kind="vm", workspace={"preset": "jupyter"})
        assert response.status_code == 422 or response.status_code == 400
        assert response.json()["errors"][0]["field"] == "body.workspace"

    async def test_an_idle_timeout_out_of_range_is_refused(
        self, client: Client, org: Tenant, auth: dict[str, str], fleet: list[str]
    ) -> None:
        response = await create(client, org, auth, kind="kubernetes",
                                workspace={"preset": "jupyter", "idle_minutes": 2})  # fmt: skip
        assert response.status_code in (400, 422)
        assert "idle_minutes" in response.text
