"""A two-tenant world for the isolation tests: a victim organization with one user per role,
an attacker organization, provider operators, a GPU catalog and nodes, and a credential for
each kind of caller."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.budgets.models import Budget
from billing.invoices.models import Invoice, InvoiceLine
from billing.outbox.models import OutboxMessage
from control_plane.clock import Clock
from control_plane.endpoints.models import Endpoint, EndpointVersion
from control_plane.identity import accounts
from control_plane.identity.models import ApiKey, Membership, User
from control_plane.identity.roles import Permission, ProviderRole, TenantRole
from control_plane.identity.secrets import split_api_key
from control_plane.ids import new_id
from control_plane.insights.models import Recommendation
from control_plane.inventory.lifecycle import NodeState
from control_plane.inventory.models import Gpu, Node
from control_plane.pools.models import Pool, PoolWindow
from control_plane.seed.demo import seed_catalog
from control_plane.settings import Settings
from control_plane.sovereignty.access.lifecycle import AccessState, ResourceType
from control_plane.sovereignty.keys.models import PROVIDER_KEYRING, Secret, SecretKind
from control_plane.telemetry.models import NodeCredential
from control_plane.tenancies.drivers.base import TenancyKind
from control_plane.tenancies.drivers.sim import SimDriver
from control_plane.tenancies.machine_access import store_credential
from control_plane.tenancies.models import GpuAllocation, GpuClaim, Shape, Tenancy
from control_plane.tenancies.reads import allocation_of
from control_plane.tenancies.repository import live_allocations
from control_plane.tenancies.timeline import Actor
from tests.fixtures.access import AccessWorld, build_access_world, make_access_request
from tests.fixtures.factories import Account, Tenant, make_api_key, make_org, make_user
from tests.fixtures.models import fake_model

_unique = itertools.count(1)

# The limited key acts with an admin's role but only these scopes: reads, never writes.
LIMITED_KEY_SCOPES = frozenset(
    {
        Permission.ORG_READ,
        Permission.MEMBERS_READ,
        Permission.PROJECTS_READ,
        Permission.API_KEYS_READ,
    }
)
NODE_REGION = "ca-qc-1"  # the nodes the tests act on live in Canada
NODE_SITE = "qc-mtl-1"
NODE_JURISDICTION = "CA"


def unique() -> int:
    """A number no other call in this run has had (for slugs, emails, hostnames)."""
    return next(_unique)


@dataclass(frozen=True)
class Caller:
    """One way of calling the API, and what the caller is in relation to the victim."""

    name: str
    kind: str  # "anonymous", "session" or "api_key"
    headers: dict[str, str] = field(default_factory=dict)
    csrf: dict[str, str] = field(default_factory=dict)
    victim_role: TenantRole | None = None  # role in the victim organization
    scopes: frozenset[Permission] | None = None  # API keys only
    provider_role: ProviderRole | None = None
    home_country: str | None = None
    outsider: bool = False  # anonymous or another tenant: must never learn about the victim


@dataclass
class World:
    victim: Tenant
    second_member: Account  # a plain member the member routes act on
    victim_key_id: str  # a key the API-key routes act on (not one a caller uses)
    attacker: Tenant
    bystander: Account  # a user in no organization, for the sign-in route
    node_id: str  # an available node in NODE_REGION
    callers: dict[str, Caller]
    victim_markers: set[str]  # ids, slugs, emails and key prefixes of the victim
    victim_secret_id: str = ""  # a stored secret of the victim (its value is never read here)
    access: AccessWorld | None = None  # operator access requests on the victim
    tenancy_id: str = ""  # an active 1-GPU Slurm tenancy of the victim on node_id
    shape_name: str = ""  # a shape offered in NODE_REGION
    provider_secret_id: str = ""  # a provider secret (a BMC credential stand-in)
    pool_id: str = ""  # a pool in NODE_REGION (no nodes) with a Monday window of the victim
    pool_window_id: str = ""
    endpoint_name: str = ""  # an endpoint of the victim (no replicas) with version 2 pending
    single_endpoint_name: str = ""  # another, with only version 1 (room for a canary)
    model_uri: str = ""  # a model in NODE_REGION's store, for creates and new versions
    draft_invoice_id: str = ""  # a draft invoice of the victim (last month, no usage)
    final_invoice_id: str = ""  # a finalized, unpaid one (100.00 CAD before tax)
    budget_id: str = ""  # a budget of the victim (CAD, no webhook)
    dead_delivery_id: str = ""  # an outbox message of the victim given up on
    recommendation_id: str = ""  # open advice on the victim's tenancy (auto-release when idle)
    agent_credential_id: str = ""  # a node agent credential of node_id
    vm_tenancy_id: str = ""  # an active simulated VM of the victim (operators hold grants on it)
    k8s_tenancy_id: str = ""  # an active simulated namespace with an unshown kubeconfig


async def build_catalog(db: AsyncSession, clock: Clock) -> None:
    """The demo regions, sites and GPU models."""
    await seed_catalog(db, clock)


async def make_node(db: AsyncSession, state: NodeState = NodeState.AVAILABLE) -> str:
    """An 8-GPU H100 node in NODE_SITE with a unique hostname."""
    now = datetime.now(UTC)
    n = unique()
    node = Node(
        id=new_id("node"),
        hostname=f"iso-h100-{n:04d}",
        region_code=NODE_REGION,
        site_code=NODE_SITE,
        rack="r01",
        bmc_endpoint=f"https://bmc-iso-{n}.{NODE_SITE}.internal",
        gpu_model_code="h100",
        gpu_count=8,
        firmware_version="96.00.89.00.01",
        driver_version="550.127.08",
        state=state,
        state_changed_at=now,
        created_at=now,
    )
    db.add(node)
    await db.flush()
    db.add_all(
        Gpu(
            id=new_id("gpu"),
            node_id=node.id,
            uuid=f"GPU-{n:08d}-0000-0000-0000-{index:012d}",
            index=index,
            model_code="h100",
            nvlink_domain=f"{node.hostname}-nvl",
        )
        for index in range(8)
    )
    await db.flush()
    return node.id


async def _session_headers(
    db: AsyncSession, clock: Clock, account: Account
) -> tuple[dict[str, str], dict[str, str]]:
    """A server-side session for ``account`` (as a sign-in makes): cookie and CSRF headers."""
    user = await db.get(User, account.user_id)
    assert user is not None
    new = await accounts.start_session(db, clock, user, "password", 3600, "127.0.0.1")
    return {"Cookie": f"cp_session={new.token}"}, {"X-CSRF-Token": new.csrf_token}


async def _key_id(db: AsyncSession, secret: str) -> str:
    prefix = split_api_key(secret)
    key = (await db.execute(select(ApiKey).where(ApiKey.prefix == prefix))).scalar_one()
    return key.id


async def build_world(
    db: AsyncSession, clock: Clock, store: Path | None = None, settings: Settings | None = None
) -> World:
    """Both tenants, the operators, a node, and one credential per caller (catalog built first)."""
    n = unique()
    victim = await make_org(db, f"victim-{n}-{new_id('x')[-8:]}")
    second = await make_user(db, f"second@{victim.slug}.test")
    db.add(
        Membership(
            id=new_id("mem"),
            org_id=victim.org_id,
            user_id=second.user_id,
            role=TenantRole.MEMBER,
            created_at=datetime.now(UTC),
        )
    )
    target_secret = await make_api_key(db, victim, TenantRole.MEMBER)
    limited_secret = await make_api_key(
        db, victim, TenantRole.ADMIN, scopes=sorted(LIMITED_KEY_SCOPES)
    )
    attacker = await make_org(db, f"attacker-{n}", roles=(TenantRole.ADMIN,))
    attacker_secret = await make_api_key(db, attacker, TenantRole.ADMIN)
    operators = {
        "operator-admin": (
            await make_user(db, provider_role=ProviderRole.OPERATOR_ADMIN),
            ProviderRole.OPERATOR_ADMIN,
            None,
        ),
        "operator-ca": (
            await make_user(db, provider_role=ProviderRole.OPERATOR, home_country="CA"),
            ProviderRole.OPERATOR,
            "CA",
        ),
        "operator-se": (
            await make_user(db, provider_role=ProviderRole.OPERATOR, home_country="SE"),
            ProviderRole.OPERATOR,
            "SE",
        ),
    }
    bystander = await make_user(db)
    node_id = await make_node(db)
    await db.flush()

    callers: dict[str, Caller] = {"anonymous": Caller("anonymous", "anonymous", outsider=True)}
    for role, account in victim.accounts.items():
        cookie, csrf = await _session_headers(db, clock, account)
        name = f"victim-{role.value}"
        callers[name] = Caller(name, "session", cookie, csrf, victim_role=role)
    callers["victim-limited-key"] = Caller(
        "victim-limited-key",
        "api_key",
        {"Authorization": f"Bearer {limited_secret}"},
        victim_role=TenantRole.ADMIN,
        scopes=LIMITED_KEY_SCOPES,
    )
    for name, (account, provider_role, home) in operators.items():
        cookie, csrf = await _session_headers(db, clock, account)
        callers[name] = Caller(
            name, "session", cookie, csrf, provider_role=provider_role, home_country=home
        )
    cookie, csrf = await _session_headers(db, clock, attacker.accounts[TenantRole.ADMIN])
    callers["attacker-admin"] = Caller("attacker-admin", "session", cookie, csrf, outsider=True)
    callers["attacker-key"] = Caller(
        "attacker-key",
        "api_key",
        {"Authorization": f"Bearer {attacker_secret}"},
        scopes=frozenset(Permission),
        outsider=True,
    )

    victim_key_id = await _key_id(db, target_secret)
    victim_secret_id = await _make_secret(db, victim.org_id)
    markers = {victim.org_id, victim.slug, victim.project_id, victim_key_id, second.user_id}
    markers |= {a.user_id for a in victim.accounts.values()}
    markers |= {a.email for a in victim.accounts.values()} | {second.email}
    markers |= {split_api_key(s) or "" for s in (target_secret, limited_secret)}
    markers |= {await _key_id(db, limited_secret), victim_secret_id}
    tenancy_id = await _make_tenancy(db, victim.org_id, node_id)
    shape_name = await _make_shape(db)
    provider_secret_id = await _make_secret(db, None)
    pool_id, pool_window_id = await _make_pool(db, victim.org_id)
    model_uri = fake_model(store, NODE_REGION, f"iso-model-{n}") if store else ""
    endpoint_id, endpoint_name = await _make_endpoint(db, victim.org_id, model_uri)
    single_id, single_name = await _make_endpoint(db, victim.org_id, model_uri, pending=False)
    draft_invoice_id = await _make_invoice(db, victim.org_id, final=False)
    final_invoice_id = await _make_invoice(db, victim.org_id, final=True)
    budget_id = await _make_budget(db, victim.org_id)
    dead_delivery_id = await _make_dead_delivery(db, victim.org_id, budget_id)
    recommendation_id = await _make_recommendation(db, victim.org_id, tenancy_id)
    agent_credential_id = await _make_agent_credential(db, node_id)
    markers |= {tenancy_id, endpoint_id, single_id, draft_invoice_id, final_invoice_id, budget_id,
                recommendation_id}  # fmt: skip
    access = await build_access_world(
        db, clock, victim.org_id, {name: account for name, (account, _, _) in operators.items()}
    )
    vm_id = k8s_id = ""
    if settings is not None:
        vm_id = await _make_machine(db, clock, settings, victim.org_id, node_id, TenancyKind.VM, 1)
        k8s_id = await _make_machine(
            db, clock, settings, victim.org_id, node_id, TenancyKind.KUBERNETES, 2
        )
        for account, _, _ in operators.values():
            await make_access_request(
                db, victim.org_id, account, clock.now(), state=AccessState.APPROVED,
                resource_type=ResourceType.TENANCY, resource_id=vm_id,
            )  # fmt: skip
        markers |= {vm_id, k8s_id}
    return World(
        victim=victim,
        second_member=second,
        victim_key_id=victim_key_id,
        attacker=attacker,
        bystander=bystander,
        node_id=node_id,
        callers=callers,
        victim_markers=markers - {""},
        victim_secret_id=victim_secret_id,
        access=access,
        tenancy_id=tenancy_id,
        vm_tenancy_id=vm_id,
        k8s_tenancy_id=k8s_id,
        shape_name=shape_name,
        provider_secret_id=provider_secret_id,
        pool_id=pool_id,
        pool_window_id=pool_window_id,
        endpoint_name=endpoint_name,
        single_endpoint_name=single_name,
        model_uri=model_uri,
        draft_invoice_id=draft_invoice_id,
        final_invoice_id=final_invoice_id,
        budget_id=budget_id,
        dead_delivery_id=dead_delivery_id,
        recommendation_id=recommendation_id,
        agent_credential_id=agent_credential_id,
    )


async def _make_secret(db: AsyncSession, org_id: str | None) -> str:
    """A secret row of the victim (or, with no organization, of the provider) in
    NODE_REGION. Its ciphertext is a stand-in: the routes tested here list, replace and
    delete secrets, none decrypts one."""
    secret = Secret(
        id=new_id("sec"),
        keyring=org_id or PROVIDER_KEYRING,
        org_id=org_id,
        region=NODE_REGION,
        name=f"iso-secret-{unique()}",
        kind=SecretKind.OTHER,
        description="",
        ciphertext=b"stand-in ciphertext, never decrypted",
        data_key_version=1,
        created_by=None,
        created_at=datetime.now(UTC),
    )
    db.add(secret)
    await db.flush()
    return secret.id


async def _make_machine(
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
    org_id: str,
    node_id: str,
    kind: TenancyKind,
    gpu_index: int,
) -> str:
    """An active tenancy of ``kind`` whose simulated machine is up (and, for Kubernetes,
    whose first kubeconfig waits, encrypted, to be shown)."""
    tenancy_id = await _make_tenancy(db, org_id, node_id, kind=kind.value, gpu_index=gpu_index)
    tenancy = await db.get(Tenancy, tenancy_id)
    assert tenancy is not None
    rows = (await live_allocations(db, [tenancy_id]))[tenancy_id]
    driver = SimDriver(kind=kind, state_dir=settings.sim_dir)
    result = await driver.provision(await allocation_of(db, tenancy, rows))
    if result.credential is not None:
        actor = Actor.system("isolation")
        await store_credential(
            db, tenancy, result.credential, actor=actor, clock=clock, settings=settings
        )
    return tenancy_id


async def _make_tenancy(
    db: AsyncSession, org_id: str, node_id: str, *, kind: str = "slurm", gpu_index: int = 0
) -> str:
    """An active simulated tenancy (Slurm unless told) of ``org_id`` holding one GPU of
    ``node_id``, with its claim and allocation (as a create and a reconciler pass leave them)."""
    now = datetime.now(UTC)
    gpu = (
        await db.execute(select(Gpu).where(Gpu.node_id == node_id, Gpu.index == gpu_index))
    ).scalar_one()
    tenancy = Tenancy(
        id=new_id("ten"), org_id=org_id, project_id=None, name=f"iso-tenancy-{unique()}",
        labels={}, kind=kind, region_code=NODE_REGION, gpu_model_code="h100", shape=None,
        node_count=1, gpus_per_node=1, gpu_milli=1000, image=None, ssh_public_keys=[],
        ends_at=None, idle_release_minutes=None, state="active", failure_reason=None,
        driver="sim", simulated=True, facts={"access": "sbatch", "simulated": "true"},
        generation=1, applied_generation=1, lease_token=None, lease_expires_at=None,
        next_attempt_at=None, attempts=0, last_error=None, created_by="isolation",
        created_at=now, state_changed_at=now, activated_at=now, release_requested_at=None,
        released_at=None, accrued_until=now, idle_since=None, expiry_warned=False,
    )  # fmt: skip
    db.add(tenancy)
    await db.flush()
    db.add(GpuClaim(gpu_id=gpu.id, node_id=node_id, used_milli=1000))
    db.add(
        GpuAllocation(
            id=new_id("gal"), tenancy_id=tenancy.id, node_id=node_id, gpu_id=gpu.id,
            gpu_index=gpu_index, milli=1000, allocated_at=now, released_at=None,
        )
    )  # fmt: skip
    await db.flush()
    return tenancy.id


async def _make_recommendation(db: AsyncSession, org_id: str, tenancy_id: str) -> str:
    """Open advice to release the victim's tenancy when idle (applying it is harmless)."""
    now = datetime.now(UTC)
    rec = Recommendation(
        id=new_id("rec"), org_id=org_id, rule="night_idle", target_kind="tenancy",
        target_id=tenancy_id, target_name="iso-tenancy", region=NODE_REGION,
        title="Idle every night", action={"kind": "schedule",
        "params": {"idle_release_minutes": 60}, "summary": "release after 60 idle minutes"},
        monthly_savings=Decimal("100.00"), currency="CAD", energy_kwh_month=Decimal("10.0"),
        co2e_kg_month=Decimal("0.1"), confidence=0.9, evidence={"nights": 7},
        wasted_gpu_hours=63.0, state="open", snoozed_until=None, note="", first_seen_at=now,
        last_seen_at=now, decided_at=None, decided_by=None,
    )  # fmt: skip
    db.add(rec)
    await db.flush()
    return rec.id


async def _make_agent_credential(db: AsyncSession, node_id: str) -> str:
    """A credential of the node's agent (its secret is not needed here)."""
    row = NodeCredential(
        id=new_id("ncr"), node_id=node_id, prefix=f"cpn_{unique():012d}", secret_hash="0" * 64,
        created_by="isolation", created_at=datetime.now(UTC), revoked_at=None, last_used_at=None,
    )  # fmt: skip
    db.add(row)
    await db.flush()
    return row.id


async def _make_shape(db: AsyncSession) -> str:
    name = f"iso-shape-{unique()}"
    db.add(
        Shape(
            id=new_id("shp"), region_code=NODE_REGION, name=name, description="isolation",
            gpu_model_code="h100", gpus_per_node=1, node_count=1, gpu_milli=1000,
            interconnect="nvlink", hourly_price=Decimal("3.50"), created_at=datetime.now(UTC),
        )
    )  # fmt: skip
    await db.flush()
    return name


async def _make_invoice(db: AsyncSession, org_id: str, *, final: bool) -> str:
    """A CAD invoice of ``org_id`` for last month with one 100.00 line (GST 5 %)."""
    now = datetime.now(UTC)
    end = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (end - timedelta(days=1)).replace(day=1)
    invoice = Invoice(
        id=new_id("inv"), org_id=org_id, kind="invoice", status="finalized" if final else "draft",
        number=f"INV-ISO-{unique():05d}" if final else None, currency="CAD",
        period_start=start, period_end=end, subtotal_minor=10000, tax_minor=500,
        total_minor=10500, credits_minor=0, amount_due_minor=10500, customer={},
        digest="0" * 64, corrects_id=None, reason="", created_at=now,
        finalized_at=now if final else None, paid_at=None, voided_at=None,
        stripe_invoice_id=None,
    )  # fmt: skip
    db.add(invoice)
    await db.flush()
    db.add(InvoiceLine(
        id=new_id("invl"), invoice_id=invoice.id, position=1, kind="gpu_seconds",
        description="GPU time: h100", dimensions={"region": NODE_REGION}, quantity=Decimal(25),
        unit="GPU-hour", unit_price=Decimal(4), amount_minor=10000, tax_rule="Canada: GST 5%",
        tax_rate=Decimal("0.05"), tax_minor=500,
    ))  # fmt: skip
    await db.flush()
    return invoice.id


async def _make_dead_delivery(db: AsyncSession, org_id: str, budget_id: str) -> str:
    """A budget webhook of ``org_id`` the dispatcher gave up on."""
    now = datetime.now(UTC)
    message = OutboxMessage(
        id=new_id("obx"), key=f"iso-dead-{unique()}", topic="webhook", org_id=org_id,
        payload={"budget_id": budget_id, "event": {}}, attempts=8, next_attempt_at=now,
        lease_until=None, done_at=None, dead_at=now, last_error="connection refused",
        created_at=now,
    )  # fmt: skip
    db.add(message)
    await db.flush()
    return message.id


async def _make_budget(db: AsyncSession, org_id: str) -> str:
    budget = Budget(
        id=new_id("bud"), org_id=org_id, project_id="", currency="CAD", amount_minor=100_000,
        thresholds=[50, 80, 100], hard_stop=False, webhook_url="", webhook_secret="", email="",
        spent_minor=0, stopped=False, evaluated_at=None, created_at=datetime.now(UTC),
    )  # fmt: skip
    db.add(budget)
    await db.flush()
    return budget.id


async def _make_pool(db: AsyncSession, org_id: str) -> tuple[str, str]:
    """A pool of NODE_REGION lent to ``org_id`` on Mondays 03:00-04:00 UTC."""
    now = datetime.now(UTC)
    pool = Pool(
        id=new_id("pool"), region_code=NODE_REGION, name=f"iso-pool-{unique()}",
        description="isolation", timezone="UTC", drain_minutes=15, created_at=now,
    )  # fmt: skip
    db.add(pool)
    await db.flush()
    window = PoolWindow(
        id=new_id("pwin"), pool_id=pool.id, org_id=org_id, project_id=None, days=1,
        start_minute=180, end_minute=240, created_at=now,
    )  # fmt: skip
    db.add(window)
    await db.flush()
    return pool.id, window.id


async def _make_endpoint(
    db: AsyncSession, org_id: str, model_uri: str, *, pending: bool = True
) -> tuple[str, str]:
    """An endpoint of ``org_id`` scaled to zero, serving version 1, with (``pending``)
    version 2 awaiting a validator's approval (added by someone else)."""
    now = datetime.now(UTC)
    name = f"iso-ep-{unique()}"
    endpoint = Endpoint(
        id=new_id("ep"), org_id=org_id, project_id=None, name=name, region_code=NODE_REGION,
        backend="python", gpu_model_code="h100", gpus_per_replica=1, gpu_milli=250,
        min_replicas=0, max_replicas=2, desired_replicas=0, target_tokens_per_s=200,
        target_queue_per_replica=4, scale_to_zero_after_s=300,
        created_by="isolation", created_at=now, updated_at=now,
        deleted_at=None,
    )  # fmt: skip
    db.add(endpoint)
    await db.flush()
    versions = [(1, "not-required", 100), (2, "pending", 0)]
    for number, approval, percent in versions if pending else versions[:1]:
        db.add(EndpointVersion(
            id=new_id("epv"), endpoint_id=endpoint.id, number=number,
            source_uri=model_uri or "file:///nonexistent", store_region=NODE_REGION,
            weights_sha256="0" * 64, license="apache-2.0", served_model=f"{name}-v{number}",
            approval=approval, decided_by=None, decided_at=None, decision_note=None,
            traffic_percent=percent, io={}, created_by="isolation", created_at=now,
            retired_at=None,
        ))  # fmt: skip
    await db.flush()
    return endpoint.id, name
