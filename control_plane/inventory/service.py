"""Inventory rules: regions, sites, the GPU catalog, node enrolment and lifecycle."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import msgspec
from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import Conflict, FieldError, InvalidInput, InvalidTransition, NotFound
from control_plane.http.pagination import Page, PageRequest, make_page
from control_plane.identity.authz import ProviderScope
from control_plane.ids import new_id
from control_plane.inventory import node_import
from control_plane.inventory.lifecycle import NodeState, allowed_from, can_transition
from control_plane.inventory.models import Gpu, GpuModel, Node, NodeEvent, Region, Site
from control_plane.inventory.schemas import (
    GpuModelCreate,
    GpuModelRead,
    GpuRead,
    InventorySummary,
    NodeEventRead,
    NodeImportResult,
    NodeRead,
    NodeTransition,
    RegionCreate,
    RegionRead,
    RegionSummary,
    RegionUpdate,
    SiteCreate,
    SiteRead,
    StateCount,
)


class InvalidImport(InvalidInput):
    status = 422
    slug = "invalid-import"
    title = "The import file was refused"


def site_read(s: Site) -> SiteRead:
    return SiteRead(code=s.code, region_code=s.region_code, name=s.name, city=s.city)


def region_read(r: Region, sites: Sequence[Site]) -> RegionRead:
    return RegionRead(
        code=r.code,
        name=r.name,
        jurisdiction=r.jurisdiction,
        sovereignty_group=r.sovereignty_group,
        currency=r.currency,
        pue=r.pue,
        grid_intensity_g_per_kwh=r.grid_intensity_g_per_kwh,
        timezone=r.timezone,
        sites=[site_read(s) for s in sites if s.region_code == r.code],
    )


def gpu_model_read(m: GpuModel) -> GpuModelRead:
    return GpuModelRead(
        code=m.code,
        name=m.name,
        vendor=m.vendor,
        generation=m.generation,
        memory_gib=m.memory_gib,
        tdp_watts=m.tdp_watts,
        interconnect=m.interconnect,
        mig_profiles=list(m.mig_profiles),
    )


def node_read(n: Node, gpus: Sequence[Gpu] | None = None) -> NodeRead:
    return NodeRead(
        id=n.id,
        hostname=n.hostname,
        region_code=n.region_code,
        site_code=n.site_code,
        rack=n.rack,
        bmc_endpoint=n.bmc_endpoint,
        gpu_model_code=n.gpu_model_code,
        gpu_count=n.gpu_count,
        firmware_version=n.firmware_version,
        driver_version=n.driver_version,
        state=NodeState(n.state),
        state_changed_at=n.state_changed_at,
        created_at=n.created_at,
        allowed_transitions=allowed_from(NodeState(n.state)),
        gpus=None
        if gpus is None
        else [
            GpuRead(
                id=g.id,
                uuid=g.uuid,
                index=g.index,
                model_code=g.model_code,
                nvlink_domain=g.nvlink_domain,
                pci_address=g.pci_address,
                numa_node=g.numa_node,
            )
            for g in sorted(gpus, key=lambda g: g.index)
        ],
    )


# Regions and sites -------------------------------------------------------------------------


_REGIONS = select(Region).order_by(Region.code).limit(bindparam("limit"))
_REGIONS_AFTER = _REGIONS.where(Region.code > bindparam("after"))
_SITES = (
    select(Site).where(Site.region_code.in_(bindparam("codes", expanding=True))).order_by(Site.code)
)


async def list_regions(db: AsyncSession, page: PageRequest) -> Page[RegionRead]:
    query = _REGIONS_AFTER if page.after else _REGIONS
    values = {"after": page.after, "limit": page.limit + 1}
    regions = (await db.execute(query, values)).scalars().all()
    result = make_page(regions, page, key=lambda r: r.code)
    sites = await _sites_of([r.code for r in result.items], db)
    return Page(items=[region_read(r, sites) for r in result.items], next_cursor=result.next_cursor)


async def _sites_of(codes: list[str], db: AsyncSession) -> Sequence[Site]:
    """(The region and site statements are built once: building one costs as much CPU as
    running it, and a portal page lists the regions.)"""
    if not codes:
        return []
    return (await db.execute(_SITES, {"codes": codes})).scalars().all()


async def get_region(db: AsyncSession, code: str) -> RegionRead:
    region = await db.get(Region, code)
    if region is None:
        raise NotFound(detail=f"No region {code!r}.")
    return region_read(region, await _sites_of([code], db))


async def create_region(db: AsyncSession, clock: Clock, data: RegionCreate) -> RegionRead:
    if await db.get(Region, data.code) is not None:
        raise Conflict(detail="Region exists.", errors=[FieldError("body.code", "already exists")])
    region = Region(
        code=data.code,
        name=data.name,
        jurisdiction=data.jurisdiction,
        sovereignty_group=data.sovereignty_group,
        currency=data.currency,
        pue=data.pue,
        grid_intensity_g_per_kwh=data.grid_intensity_g_per_kwh,
        timezone=data.timezone,
        created_at=clock.now(),
    )
    db.add(region)
    return region_read(region, [])


async def update_region(db: AsyncSession, code: str, data: RegionUpdate) -> RegionRead:
    region = await db.get(Region, code)
    if region is None:
        raise NotFound(detail=f"No region {code!r}.")
    for name in ("name", "pue", "grid_intensity_g_per_kwh", "timezone"):
        value = getattr(data, name)
        if value is not msgspec.UNSET:
            setattr(region, name, value)
    return region_read(region, await _sites_of([code], db))


async def create_site(db: AsyncSession, region_code: str, data: SiteCreate) -> SiteRead:
    if await db.get(Region, region_code) is None:
        raise NotFound(detail=f"No region {region_code!r}.")
    if await db.get(Site, data.code) is not None:
        raise Conflict(detail="Site exists.", errors=[FieldError("body.code", "already exists")])
    site = Site(code=data.code, region_code=region_code, name=data.name, city=data.city)
    db.add(site)
    return site_read(site)


# GPU catalog -------------------------------------------------------------------------------


async def list_gpu_models(db: AsyncSession, page: PageRequest) -> Page[GpuModelRead]:
    query = select(GpuModel).order_by(GpuModel.code)
    if page.after:
        query = query.where(GpuModel.code > page.after)
    rows = (await db.execute(query.limit(page.limit + 1))).scalars().all()
    result = make_page(rows, page, key=lambda m: m.code)
    return Page(items=[gpu_model_read(m) for m in result.items], next_cursor=result.next_cursor)


async def create_gpu_model(db: AsyncSession, data: GpuModelCreate) -> GpuModelRead:
    if await db.get(GpuModel, data.code) is not None:
        raise Conflict(
            detail="GPU model exists.", errors=[FieldError("body.code", "already exists")]
        )
    model = GpuModel(
        code=data.code,
        name=data.name,
        vendor=data.vendor,
        generation=data.generation,
        memory_gib=data.memory_gib,
        tdp_watts=data.tdp_watts,
        interconnect=data.interconnect,
        mig_profiles=list(data.mig_profiles),
    )
    db.add(model)
    return gpu_model_read(model)


# Nodes ----------------------------------------------------------------------------------------


async def list_nodes(
    db: AsyncSession,
    page: PageRequest,
    *,
    region: str | None = None,
    state: NodeState | None = None,
    gpu_model: str | None = None,
    site: str | None = None,
    hostname_prefix: str | None = None,
) -> Page[NodeRead]:
    query = select(Node)
    if region:
        query = query.where(Node.region_code == region)
    if state:
        query = query.where(Node.state == state)
    if gpu_model:
        query = query.where(Node.gpu_model_code == gpu_model)
    if site:
        query = query.where(Node.site_code == site)
    if hostname_prefix:
        escaped = hostname_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Node.hostname.like(f"{escaped}%", escape="\\"))
    if page.after:
        query = query.where(Node.hostname > page.after)
    rows = (await db.execute(query.order_by(Node.hostname).limit(page.limit + 1))).scalars().all()
    result = make_page(rows, page, key=lambda n: n.hostname)
    return Page(items=[node_read(n) for n in result.items], next_cursor=result.next_cursor)


async def get_node(db: AsyncSession, node_id: str) -> NodeRead:
    node = await _node(db, node_id)
    gpus = (await db.execute(select(Gpu).where(Gpu.node_id == node_id))).scalars().all()
    return node_read(node, gpus)


async def _node(db: AsyncSession, node_id: str) -> Node:
    node = await db.get(Node, node_id)
    if node is None:
        raise NotFound(detail="No such node.")
    return node


async def node_events(db: AsyncSession, node_id: str, page: PageRequest) -> Page[NodeEventRead]:
    await _node(db, node_id)
    query = select(NodeEvent).where(NodeEvent.node_id == node_id)
    if page.after:
        query = query.where(NodeEvent.id < page.after)
    rows = (
        (await db.execute(query.order_by(NodeEvent.id.desc()).limit(page.limit + 1)))
        .scalars()
        .all()
    )
    result = make_page(rows, page, key=lambda e: e.id)
    return Page(
        items=[
            NodeEventRead(
                id=e.id,
                node_id=e.node_id,
                from_state=NodeState(e.from_state) if e.from_state else None,
                to_state=NodeState(e.to_state),
                reason=e.reason,
                actor=e.actor,
                at=e.at,
            )
            for e in result.items
        ],
        next_cursor=result.next_cursor,
    )


async def transition_node(
    db: AsyncSession, clock: Clock, operator: ProviderScope, node_id: str, data: NodeTransition
) -> NodeRead:
    """Move a node along its lifecycle; operators only in their home jurisdiction."""
    node = await _node(db, node_id)
    region = await db.get(Region, node.region_code)
    assert region is not None
    operator.require_jurisdiction([region.jurisdiction])
    current = NodeState(node.state)
    if not can_transition(current, data.to):
        allowed = ", ".join(allowed_from(current)) or "none (retired)"
        raise InvalidTransition(
            detail=f"A node cannot go from {current} to {data.to}; allowed: {allowed}.",
            errors=[FieldError("body.to", f"not allowed from {current}")],
        )
    now = clock.now()
    node.state = data.to
    node.state_changed_at = now
    db.add(
        NodeEvent(
            id=new_id("nev"),
            node_id=node.id,
            from_state=current,
            to_state=data.to,
            reason=data.reason,
            actor=operator.principal.ref,
            at=now,
        )
    )
    return node_read(node)


async def import_nodes(
    db: AsyncSession,
    clock: Clock,
    operator: ProviderScope,
    fmt: str,
    content: str,
    dry_run: bool,
) -> NodeImportResult:
    """Enrol nodes from CSV/YAML: every row is checked first; one bad row refuses the file."""
    try:
        rows = node_import.parse(fmt, content)
    except node_import.ImportRejected as exc:
        raise InvalidImport(detail="No node was imported.", errors=exc.errors) from exc
    errors = await _check_references(db, operator, rows)
    if errors:
        raise InvalidImport(detail="No node was imported.", errors=errors[:100])
    if dry_run:
        return NodeImportResult(imported=len(rows), dry_run=True, node_ids=[])
    now = clock.now()
    nodes = []
    for row in rows:
        node = Node(
            id=new_id("node"),
            hostname=row.hostname,
            region_code=row.region,
            site_code=row.site,
            rack=row.rack,
            bmc_endpoint=row.bmc_endpoint,
            gpu_model_code=row.gpu_model,
            gpu_count=len(row.gpus),
            firmware_version=row.firmware_version,
            driver_version=row.driver_version,
            numa_cpus=dict(row.numa_cpus),
            state=NodeState.ENROLLING,
            state_changed_at=now,
            created_at=now,
        )
        nodes.append((node, row))
    db.add_all(node for node, _ in nodes)
    await db.flush()  # parents first: the tables have no ORM relationships
    for node, row in nodes:
        db.add_all(
            Gpu(
                id=new_id("gpu"),
                node_id=node.id,
                uuid=g.uuid,
                index=g.index,
                model_code=row.gpu_model,
                nvlink_domain=g.nvlink_domain,
                pci_address=g.pci_address,
                numa_node=g.numa_node,
            )
            for g in row.gpus
        )
        db.add(
            NodeEvent(
                id=new_id("nev"),
                node_id=node.id,
                from_state=None,
                to_state=NodeState.ENROLLING,
                reason=f"imported from {fmt} row {row.line}",
                actor=operator.principal.ref,
                at=now,
            )
        )
    await db.flush()
    return NodeImportResult(
        imported=len(rows), dry_run=False, node_ids=[node.id for node, _ in nodes]
    )


async def _check_references(
    db: AsyncSession, operator: ProviderScope, rows: list[node_import.NodeRow]
) -> list[FieldError]:
    regions = {r.code: r for r in (await db.execute(select(Region))).scalars()}
    sites = {s.code: s for s in (await db.execute(select(Site))).scalars()}
    models = set((await db.execute(select(GpuModel.code))).scalars())
    hosts = {
        h
        for h in (
            await db.execute(
                select(Node.hostname).where(Node.hostname.in_([r.hostname for r in rows]))
            )
        ).scalars()
    }
    uuids = {
        u
        for u in (
            await db.execute(
                select(Gpu.uuid).where(Gpu.uuid.in_([g.uuid for r in rows for g in r.gpus]))
            )
        ).scalars()
    }
    errors: list[FieldError] = []
    for row in rows:
        where = f"row {row.line}"
        region = regions.get(row.region)
        if region is None:
            errors.append(FieldError(f"{where}: region", f"unknown region {row.region!r}"))
        elif not operator.may_act_in(region.jurisdiction):
            errors.append(FieldError(f"{where}: region", "outside your jurisdiction"))
        site = sites.get(row.site)
        if site is None or site.region_code != row.region:
            errors.append(FieldError(f"{where}: site", f"no site {row.site!r} in {row.region}"))
        if row.gpu_model not in models:
            errors.append(FieldError(f"{where}: gpu_model", f"unknown GPU model {row.gpu_model!r}"))
        if row.hostname in hosts:
            errors.append(FieldError(f"{where}: hostname", "already enrolled"))
        taken = [g.uuid for g in row.gpus if g.uuid in uuids]
        if taken:
            errors.append(FieldError(f"{where}: gpu uuid", f"{taken[0]} already enrolled"))
    return errors


async def summary(db: AsyncSession) -> InventorySummary:
    """Nodes and GPUs per region and state, and GPUs per model, for dashboards."""
    regions = (await db.execute(select(Region).order_by(Region.code))).scalars().all()
    counts = await db.execute(
        select(
            Node.region_code,
            Node.state,
            Node.gpu_model_code,
            func.count(),
            func.sum(Node.gpu_count),
        ).group_by(Node.region_code, Node.state, Node.gpu_model_code)
    )
    by_region: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    models: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for region_code, state, model, nodes, gpus in counts:
        by_region[region_code][state][0] += nodes
        by_region[region_code][state][1] += int(gpus or 0)
        models[region_code][model] += int(gpus or 0)
    out = []
    for r in regions:
        states = by_region.get(r.code, {})
        out.append(
            RegionSummary(
                region_code=r.code,
                region_name=r.name,
                jurisdiction=r.jurisdiction,
                nodes=sum(v[0] for v in states.values()),
                gpus=sum(v[1] for v in states.values()),
                by_state=[
                    StateCount(state=s, nodes=states[s][0], gpus=states[s][1])
                    for s in NodeState
                    if s in states
                ],
                gpus_by_model=dict(sorted(models.get(r.code, {}).items())),
            )
        )
    return InventorySummary(
        regions=out, total_nodes=sum(r.nodes for r in out), total_gpus=sum(r.gpus for r in out)
    )


async def state_changes_per_day(
    db: AsyncSession, first_day: date, last_day: date
) -> dict[date, dict[NodeState, int]]:
    """Lifecycle transitions per UTC day, counted by the state entered; every day is present."""
    start = datetime.combine(first_day, time.min, tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=UTC)
    rows = await db.execute(
        select(NodeEvent.at, NodeEvent.to_state).where(NodeEvent.at >= start, NodeEvent.at < end)
    )
    days: dict[date, dict[NodeState, int]] = {
        first_day + timedelta(days=n): {} for n in range((last_day - first_day).days + 1)
    }
    for at, to_state in rows:
        counts = days[at.astimezone(UTC).date()]
        state = NodeState(to_state)
        counts[state] = counts.get(state, 0) + 1
    return days


# --- GPUs as telemetry sees them ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuLocation:
    """Where a GPU sits: what telemetry rollups and fleet reports group by."""

    gpu_id: str
    node_id: str
    region: str
    gpu_model: str
    timezone: str


async def gpus_by_uuid(db: AsyncSession, node_id: str) -> dict[str, str]:
    """The node's GPUs, NVML UUID -> GPU id (empty when the node does not exist)."""
    rows = await db.execute(select(Gpu.uuid, Gpu.id).where(Gpu.node_id == node_id))
    return {uuid: gpu_id for uuid, gpu_id in rows}


async def gpu_locations(db: AsyncSession, gpu_ids: Sequence[str]) -> dict[str, GpuLocation]:
    if not gpu_ids:
        return {}
    rows = await db.execute(
        select(Gpu.id, Gpu.node_id, Node.region_code, Gpu.model_code, Region.timezone)
        .join(Node, Node.id == Gpu.node_id)
        .join(Region, Region.code == Node.region_code)
        .where(Gpu.id.in_(list(gpu_ids)))
    )
    return {row[0]: GpuLocation(*row) for row in rows}


async def region_gpu_counts(db: AsyncSession) -> dict[str, int]:
    """GPUs per region, over nodes in any state but retired."""
    rows = await db.execute(
        select(Node.region_code, func.count(Gpu.id))
        .join(Gpu, Gpu.node_id == Node.id)
        .where(Node.state != NodeState.RETIRED.value)
        .group_by(Node.region_code)
    )
    return {region: count for region, count in rows}


async def region_energy_facts(db: AsyncSession) -> dict[str, tuple[float, float]]:
    """Each region's PUE and grid intensity (gCO2e/kWh)."""
    rows = await db.execute(select(Region.code, Region.pue, Region.grid_intensity_g_per_kwh))
    return {code: (float(pue), float(grid)) for code, pue, grid in rows}


@dataclass(frozen=True, slots=True)
class GpuModelFacts:
    code: str
    name: str
    memory_gib: int
    tdp_watts: int
    sliceable: bool  # has MIG profiles: a tenancy can hold a fraction of one


async def gpu_model_facts(db: AsyncSession) -> dict[str, GpuModelFacts]:
    rows = await db.execute(select(GpuModel))
    return {
        m.code: GpuModelFacts(m.code, m.name, m.memory_gib, m.tdp_watts, bool(m.mig_profiles))
        for m in rows.scalars()
    }


async def models_by_region(db: AsyncSession) -> dict[str, set[str]]:
    """GPU models each region has nodes of (retired nodes aside)."""
    rows = await db.execute(
        select(Node.region_code, Node.gpu_model_code)
        .where(Node.state != NodeState.RETIRED.value)
        .distinct()
    )
    result: dict[str, set[str]] = {}
    for region, model in rows:
        result.setdefault(region, set()).add(model)
    return result
