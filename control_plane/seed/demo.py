"""Demo data for ``make run``: safe to run any number of times (it only adds what is missing)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.identity.models import Membership, Organization, Project, User
from control_plane.identity.roles import ProviderRole, TenantRole
from control_plane.identity.secrets import hash_password
from control_plane.ids import new_id
from control_plane.inventory.lifecycle import NodeState
from control_plane.inventory.models import Gpu, GpuModel, Node, NodeEvent, Region, Site
from control_plane.sovereignty.residency import service as residency
from control_plane.sovereignty.residency.schemas import PolicyChange
from control_plane.telemetry.agent.fake_nvml import fake_uuid
from control_plane.tenancies import quotas, shapes
from control_plane.tenancies.models import Shape
from control_plane.tenancies.schemas import QuotaSet, ShapeCreate


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str
    role: str


DEMO_LOGINS = (
    DemoLogin("owner@demo.example", "demo-owner-pass", "owner of org 'demo'"),
    DemoLogin("member@demo.example", "demo-member-pass", "member of org 'demo'"),
    DemoLogin("auditor@demo.example", "demo-auditor-pass", "auditor of org 'demo'"),
    DemoLogin("ops-admin@provider.example", "demo-opsadmin-pass", "operator-admin"),
    DemoLogin("ops-ca@provider.example", "demo-ops-ca-pass", "operator (home: CA)"),
    DemoLogin("ops-se@provider.example", "demo-ops-se-pass", "operator (home: SE)"),
)

REGIONS = (
    # code, name, jurisdiction, group, currency, PUE, gCO2e/kWh, sites
    (
        "ca-qc-1",
        "Québec (Canada)",
        "CA",
        "CA",
        "CAD",
        "1.15",
        2,
        [("qc-mtl-1", "Montréal 1", "Montréal"), ("qc-bea-1", "Beauharnois 1", "Beauharnois")],
    ),
    (
        "se-north-1",
        "Northern Sweden (EU)",
        "SE",
        "EU",
        "SEK",
        "1.10",
        17,
        [("se-lla-1", "Luleå 1", "Luleå")],
    ),
    (
        "us-east-1",
        "US East (non-sovereign)",
        "US",
        "none",
        "USD",
        "1.35",
        367,
        [("us-ash-1", "Ashburn 1", "Ashburn")],
    ),
)

# Local time of each demo region (night and day in utilization reports).
REGION_ZONES = {
    "ca-qc-1": "America/Toronto",
    "se-north-1": "Europe/Stockholm",
    "us-east-1": "America/New_York",
}

GPU_MODELS: tuple[tuple[str, str, str, str, int, int, str, list[str]], ...] = (
    (
        "h100",
        "NVIDIA H100 SXM5 80GB",
        "NVIDIA",
        "Hopper",
        80,
        700,
        "NVLink 4",
        ["1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb"],
    ),
    (
        "h200",
        "NVIDIA H200 SXM 141GB",
        "NVIDIA",
        "Hopper",
        141,
        700,
        "NVLink 4",
        ["1g.18gb", "3g.71gb", "7g.141gb"],
    ),
    (
        "a100",
        "NVIDIA A100 SXM4 80GB",
        "NVIDIA",
        "Ampere",
        80,
        400,
        "NVLink 3",
        ["1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb"],
    ),
    ("l40s", "NVIDIA L40S 48GB", "NVIDIA", "Ada Lovelace", 48, 350, "PCIe 4", []),
)

# (site, hostname prefix, gpu model, gpus per node, count)
FLEET = (
    ("qc-mtl-1", "qc-h100", "h100", 8, 10),
    ("qc-mtl-1", "qc-l40s", "l40s", 4, 6),
    ("qc-bea-1", "qc-h200", "h200", 8, 4),
    ("se-lla-1", "se-h100", "h100", 8, 8),
    ("se-lla-1", "se-a100", "a100", 8, 4),
    ("us-ash-1", "us-a100", "a100", 8, 6),
    ("us-ash-1", "us-l40s", "l40s", 4, 4),
)
# Its GPUs carry the UUIDs of `cpctl agent --source fake` (four simulated GPUs), so an
# agent run without a GPU reports for a real demo node (README quick start).
AGENT_DEMO_NODE = "qc-l40s-05"
FAKE_GPUS = 4
# A few nodes shown in other lifecycle states: (hostname, path of states after enrolling)
_STATE_PATHS = {
    "qc-h100-09": [NodeState.BURN_IN, NodeState.AVAILABLE, NodeState.DRAINING],
    "qc-h100-10": [NodeState.BURN_IN, NodeState.MAINTENANCE],
    "se-h100-08": [NodeState.BURN_IN],
    "us-a100-06": [NodeState.BURN_IN, NodeState.AVAILABLE, NodeState.MAINTENANCE],
    "qc-l40s-06": [],
}


# The demo lab keeps data in Canada and the EU (Québec and Sweden usable, us-east-1 refused),
# with Canadian and Swedish operators; docs/residency.md explains the choice.
DEMO_RESIDENCY = PolicyChange(
    template="canada-sovereign",
    name="Canada and EU",
    allowed_groups=["EU"],
    operator_jurisdictions=["CA", "SE"],
)


async def seed_demo(db: AsyncSession, clock: Clock) -> dict[str, int]:
    """Insert the demo organization, users, regions, GPU catalog and fleet if missing."""
    added = {"users": 0, "regions": 0, "nodes": 0}
    now = clock.now()
    users = {}
    for login in DEMO_LOGINS:
        user, created = await _user(db, login, now)
        users[login.email] = user
        added["users"] += created
    org = (
        await db.execute(select(Organization).where(Organization.slug == "demo"))
    ).scalar_one_or_none()
    if org is None:
        org = Organization(id=new_id("org"), slug="demo", name="Demo Research Lab", created_at=now)
        db.add(org)
        await db.flush()
        for email, role in (
            ("owner@demo.example", TenantRole.OWNER),
            ("member@demo.example", TenantRole.MEMBER),
            ("auditor@demo.example", TenantRole.AUDITOR),
        ):
            db.add(
                Membership(
                    id=new_id("mem"),
                    org_id=org.id,
                    user_id=users[email].id,
                    role=role,
                    created_at=now,
                )
            )
        for slug, name in (("default", "Default"), ("llm-research", "LLM research")):
            db.add(
                Project(
                    id=new_id("prj"),
                    org_id=org.id,
                    slug=slug,
                    name=name,
                    description="",
                    created_at=now,
                )
            )
    added["regions"] = await seed_catalog(db, clock)
    added["nodes"] = await _fleet(db, clock)
    added["shapes"] = await _shapes(db, clock)
    await _default_quota(db, now)
    await residency.seed_policy(db, clock, org.id, DEMO_RESIDENCY)
    await db.flush()
    return added


# (region, name, GPU model, GPUs per node, nodes, thousandths, interconnect, price per hour)
Interconnect = Literal["nvlink", "pcie"]
SHAPES: tuple[tuple[str, str, str, int, int, int, Interconnect, str, str], ...] = (
    ("ca-qc-1", "inference-quarter", "l40s", 1, 1, 250, "pcie", "0.55", "A quarter of an L40S"),
    ("ca-qc-1", "small", "l40s", 1, 1, 1000, "pcie", "2.10", "1x L40S"),
    ("ca-qc-1", "medium", "h100", 2, 1, 1000, "nvlink", "8.90", "2x H100 (NVLink)"),
    ("ca-qc-1", "large", "h100", 8, 1, 1000, "nvlink", "34.80", "One 8x H100 NVLink node"),
    ("ca-qc-1", "large-h200", "h200", 8, 1, 1000, "nvlink", "46.40", "One 8x H200 node"),
    ("ca-qc-1", "xlarge", "h100", 8, 2, 1000, "nvlink", "69.60", "Two 8x H100 nodes"),
    ("se-north-1", "medium", "h100", 2, 1, 1000, "nvlink", "62.00", "2x H100 (NVLink)"),
    ("se-north-1", "large", "h100", 8, 1, 1000, "nvlink", "242.00", "One 8x H100 node"),
    ("se-north-1", "large-a100", "a100", 8, 1, 1000, "nvlink", "168.00", "One 8x A100 node"),
    ("us-east-1", "small", "l40s", 1, 1, 1000, "pcie", "1.45", "1x L40S"),
    ("us-east-1", "large-a100", "a100", 8, 1, 1000, "nvlink", "17.60", "One 8x A100 node"),
)
DEFAULT_MAX_GPUS = 64


async def _shapes(db: AsyncSession, clock: Clock) -> int:
    existing = {(r, n) for r, n in await db.execute(select(Shape.region_code, Shape.name))}
    added = 0
    for region, name, model, per_node, nodes, milli, link, price, text in SHAPES:
        if (region, name) in existing:
            continue
        change = ShapeCreate(
            name=name, gpu_model=model, gpus_per_node=per_node, node_count=nodes,
            gpu_milli=milli, interconnect=link, hourly_price=Decimal(price), description=text,
        )  # fmt: skip
        await shapes.create_shape(db, clock, region, change)
        added += 1
    return added


async def _default_quota(db: AsyncSession, now: datetime) -> None:
    """Every organization may hold 64 GPUs at once unless an operator says otherwise."""
    if not any(rule.org_id == "*" for rule in await quotas.all_rules(db)):
        await quotas.set_rule(db, QuotaSet(max_gpus=DEFAULT_MAX_GPUS), now)


async def _user(db: AsyncSession, login: DemoLogin, now: datetime) -> tuple[User, bool]:
    user = (await db.execute(select(User).where(User.email == login.email))).scalar_one_or_none()
    if user is not None:
        return user, False
    provider_role, home = None, None
    if login.email.startswith("ops-admin"):
        provider_role = ProviderRole.OPERATOR_ADMIN
    elif login.email.startswith("ops-"):
        provider_role = ProviderRole.OPERATOR
        home = login.email[4:6].upper()
    user = User(
        id=new_id("usr"),
        email=login.email,
        name=login.email.split("@")[0].title(),
        password_hash=hash_password(login.password),
        provider_role=provider_role,
        home_country=home,
        is_active=True,
        failed_logins=0,
        created_at=now,
    )
    db.add(user)
    await db.flush()
    return user, True


async def seed_catalog(db: AsyncSession, clock: Clock) -> int:
    """The demo regions, sites and GPU catalog, where missing; returns regions added."""
    added = await _regions(db, clock)
    await _gpu_models(db)
    return added


async def _regions(db: AsyncSession, clock: Clock) -> int:
    added = 0
    for code, name, country, group, currency, pue, grid, sites in REGIONS:
        if await db.get(Region, code) is None:
            db.add(
                Region(
                    code=code,
                    name=name,
                    jurisdiction=country,
                    sovereignty_group=group,
                    currency=currency,
                    pue=Decimal(pue),
                    grid_intensity_g_per_kwh=grid,
                    timezone=REGION_ZONES.get(code, "UTC"),
                    created_at=clock.now(),
                )
            )
            added += 1
            await db.flush()
        for site_code, site_name, city in sites:
            if await db.get(Site, site_code) is None:
                db.add(Site(code=site_code, region_code=code, name=site_name, city=city))
    await db.flush()
    return added


async def _gpu_models(db: AsyncSession) -> None:
    for code, name, vendor, generation, memory, tdp, link, mig in GPU_MODELS:
        if await db.get(GpuModel, code) is None:
            db.add(
                GpuModel(
                    code=code,
                    name=name,
                    vendor=vendor,
                    generation=generation,
                    memory_gib=memory,
                    tdp_watts=tdp,
                    interconnect=link,
                    mig_profiles=list(mig),
                )
            )
    await db.flush()


async def _fleet(db: AsyncSession, clock: Clock) -> int:
    sites = {s.code: s for s in (await db.execute(select(Site))).scalars()}
    existing = set((await db.execute(select(Node.hostname))).scalars())
    added = 0
    start = clock.now() - timedelta(days=30)
    for site_code, prefix, model, per_node, count in FLEET:
        for n in range(1, count + 1):
            hostname = f"{prefix}-{n:02d}"
            if hostname in existing:
                continue
            node, children = _node(sites[site_code], hostname, model, per_node, n, start)
            db.add(node)
            await db.flush()  # no ORM relationships, so parents are flushed first
            db.add_all(children)
            added += 1
    return added


def _node(
    site: Site, hostname: str, model: str, per_node: int, n: int, enrolled: datetime
) -> tuple[Node, list[Gpu | NodeEvent]]:
    path = _STATE_PATHS.get(hostname, [NodeState.BURN_IN, NodeState.AVAILABLE])
    node = Node(
        id=new_id("node"),
        hostname=hostname,
        region_code=site.region_code,
        site_code=site.code,
        rack=f"r{(n - 1) // 4 + 1:02d}",
        bmc_endpoint=f"https://bmc-{hostname}.{site.code}.internal",
        gpu_model_code=model,
        gpu_count=per_node,
        firmware_version="96.00.89.00.01",
        driver_version="550.127.08",
        state=(path[-1] if path else NodeState.ENROLLING),
        state_changed_at=enrolled + timedelta(hours=len(path) * 6),
        created_at=enrolled,
        numa_cpus={"0": "0-47", "1": "48-95"},  # a two-socket GPU server
    )
    children: list[Gpu | NodeEvent] = []
    nvlink = model in {"h100", "h200", "a100"}
    for index in range(per_node):
        children.append(
            Gpu(
                id=new_id("gpu"),
                node_id=node.id,
                uuid=(
                    fake_uuid(index)
                    if hostname == AGENT_DEMO_NODE and index < FAKE_GPUS
                    else f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{hostname}/{index}')}"
                ),
                index=index,
                model_code=model,
                nvlink_domain=f"{hostname}-nvl" if nvlink else None,
                # first half of the GPUs on socket 0, the rest on socket 1
                pci_address=f"0000:{0x18 + 0x10 * index:02x}:00.0",
                numa_node=index * 2 // per_node,
            )
        )
    previous: NodeState | None = None
    for step, state in enumerate([NodeState.ENROLLING, *path]):
        children.append(
            NodeEvent(
                id=new_id("nev"),
                node_id=node.id,
                from_state=previous,
                to_state=state,
                reason="demo seed",
                actor="system:seed",
                at=enrolled + timedelta(hours=step * 6),
            )
        )
        previous = state
    return node, children
