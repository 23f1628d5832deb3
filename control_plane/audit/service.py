"""What tenants and auditors do with the ledger: browse their entries, export a bundle.

An organization sees only its own chain of this deployment's region (``{org}/{region}``);
the TenantScope decides whether the caller may read or export it.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.audit.bundle import write_bundle
from control_plane.audit.canonical import format_time
from control_plane.audit.chain import AuditEntry, chain_name, verify_chain
from control_plane.audit.checkpoints import checkpoints_for_chain, take_checkpoint
from control_plane.audit.keyfiles import load_keyring
from control_plane.audit.merkle import proofs_for
from control_plane.audit.models import AuditEntryRow
from control_plane.audit.recorder import actor_of
from control_plane.audit.rows import entry_columns, to_entry
from control_plane.audit.schemas import (
    ActorRead,
    AuditEntryRead,
    AuditKeysRead,
    PublicKeyRead,
    TargetRead,
)
from control_plane.clock import Clock
from control_plane.errors import FieldError, InvalidInput
from control_plane.http.pagination import Page, PageRequest, make_page
from control_plane.identity.authz import TenantScope
from control_plane.settings import Settings
from control_plane.sovereignty.residency import service as residency

__all__ = ["EntryFilter", "export_zip", "list_entries", "public_keys"]


@dataclass(frozen=True)
class EntryFilter:
    action: str | None = None
    outcome: str | None = None
    actor_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def entry_read(e: AuditEntry) -> AuditEntryRead:
    return AuditEntryRead(
        seq=e.seq,
        chain=e.chain,
        at=e.at,
        actor=ActorRead(e.actor_kind, e.actor_id),
        org_id=e.org_id,
        action=e.action,
        target=TargetRead(e.target_type, e.target_id),
        request_id=e.request_id,
        source_address=e.source_address,
        outcome=e.outcome,
        decision_ref=e.decision_ref,
        payload_hash=e.payload_hash,
        prev_hash=e.prev_hash,
        entry_hash=e.entry_hash,
    )


def _check_window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since > until:
        raise InvalidInput(
            detail="since is after until.", errors=[FieldError("query.since", "after until")]
        )


async def list_entries(
    db: AsyncSession,
    scope: TenantScope,
    settings: Settings,
    org_id: str,
    page: PageRequest,
    where: EntryFilter,
) -> Page[AuditEntryRead]:
    """The organization's entries in this region, newest first."""
    scope.require(org_id)
    _check_window(where.since, where.until)
    query = select(*entry_columns()).where(
        AuditEntryRow.chain == chain_name(org_id, settings.region)
    )
    if where.action:
        query = query.where(AuditEntryRow.action.startswith(where.action, autoescape=True))
    if where.outcome:
        query = query.where(AuditEntryRow.outcome == where.outcome)
    if where.actor_id:
        query = query.where(AuditEntryRow.actor_id == where.actor_id)
    if where.since:
        query = query.where(AuditEntryRow.at >= format_time(where.since))
    if where.until:
        query = query.where(AuditEntryRow.at <= format_time(where.until))
    if page.after is not None:
        query = query.where(AuditEntryRow.seq < _seq_cursor(page.after))
    rows = await db.execute(query.order_by(AuditEntryRow.seq.desc()).limit(page.limit + 1))
    items = [entry_read(to_entry(row._mapping)) for row in rows]
    return make_page(items, page, lambda e: e.seq)


def _seq_cursor(after: str) -> int:
    if not after.isdigit():
        raise InvalidInput(
            detail="cursor is not one this API issued.",
            errors=[FieldError("query.cursor", "malformed cursor")],
        )
    return int(after)


def public_keys(settings: Settings, now: datetime) -> AuditKeysRead:
    keyring = load_keyring(settings.key_dir, settings.region, now)
    return AuditKeysRead(
        region=settings.region,
        keys=[PublicKeyRead(**k.to_dict()) for k in keyring.public_keys(settings.region)],
    )


async def export_zip(
    db: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    scope: TenantScope,
    settings: Settings,
    clock: Clock,
    org_id: str,
    since: datetime | None,
    until: datetime | None,
    destination: str | None = None,
) -> bytes:
    """The organization's bundle (docs/audit-format.md) for [since, until], zipped.

    ``destination`` is the jurisdiction the bundle goes to, as the caller declares it; the
    organization's residency policy must allow the export there (recorded either way).

    A checkpoint is signed first (in its own short transaction) so the bundle ends on a
    signed commitment to the newest entry.
    """
    scope.require(org_id)
    _check_window(since, until)
    # Sealed first, in its own transaction (SQLite has one writer: the request's own
    # transaction must not hold the write lock yet).
    async with sessionmaker() as checkpoint_db, checkpoint_db.begin():
        await take_checkpoint(checkpoint_db, settings, clock.now())
    actor_kind, actor_id = actor_of(scope.principal)
    # The bundle leaves the operator: the organization's residency policy decides where to.
    await residency.check_export(
        db,
        org_id=org_id,
        region_code=settings.region,
        destination_jurisdiction=destination,
        actor_kind=actor_kind,
        actor_id=actor_id,
        subject=f"audit_export:{chain_name(org_id, settings.region)}",
        clock=clock,
        settings=settings,
    )
    with tempfile.TemporaryDirectory(prefix="cp-audit-export-") as tmp:
        await write_org_bundle(db, settings, clock, org_id, since, until, Path(tmp))
        return _zip(Path(tmp))


async def write_org_bundle(
    db: AsyncSession,
    settings: Settings,
    clock: Clock,
    org_id: str,
    since: datetime | None,
    until: datetime | None,
    out: Path,
) -> Path:
    """Write the bundle of ``org_id``'s chain in this region, up to the newest checkpoint."""
    region = settings.region
    chain = chain_name(org_id, region)
    query = select(*entry_columns()).where(AuditEntryRow.chain == chain)
    if since is not None:
        query = query.where(AuditEntryRow.at >= format_time(since))
    if until is not None:
        query = query.where(AuditEntryRow.at <= format_time(until))
    rows = await db.execute(query.order_by(AuditEntryRow.seq))
    chosen = [to_entry(row._mapping) for row in rows]
    checkpoints = []
    if chosen:
        covered = await checkpoints_for_chain(db, region, chain, chosen[0].seq, chosen[-1].seq)
        if covered:
            # End on the newest signed head: entries after it are not yet committed to.
            last_head = max(
                leaf.seq for _, leaves in covered for leaf in leaves if leaf.chain == chain
            )
            chosen = [e for e in chosen if e.seq <= last_head]
        checkpoints = covered
    keyring = load_keyring(settings.key_dir, region, clock.now())
    return write_bundle(
        out,
        chosen,
        [cp for cp, _ in checkpoints],
        [proof for cp, leaves in checkpoints for proof in proofs_for(cp, leaves, [chain])],
        keyring.public_keys(region),
        org_id=org_id,
        since=since,
        until=until,
    )


def _zip(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.iterdir()):
            archive.write(path, arcname=path.name)
    return buffer.getvalue()


@dataclass(frozen=True)
class ChainStatus:
    """What the portal shows about an organization's chain: size, integrity, last seal."""

    chain: str
    entries: int
    intact: bool
    problem: str | None
    checkpoint_number: int | None
    checkpoint_at: str | None
    checkpoint_seq: int | None


async def chain_status(
    db: AsyncSession, scope: TenantScope, settings: Settings, org_id: str
) -> ChainStatus:
    """Re-verify the organization's whole chain server-side (auditors still verify exports
    offline; this is the quick look) and find the newest checkpoint covering it."""
    scope.require(org_id)
    chain = chain_name(org_id, settings.region)
    rows = await db.execute(
        select(*entry_columns()).where(AuditEntryRow.chain == chain).order_by(AuditEntryRow.seq)
    )
    stored = [to_entry(row._mapping) for row in rows]
    latest = (
        await checkpoints_for_chain(db, settings.region, chain, 1, stored[-1].seq) if stored else []
    )
    sealed = [(x.seq, x.entry_hash) for _, leaves in latest for x in leaves if x.chain == chain]
    problem = verify_chain(stored, chain=chain, heads=sealed) if stored or sealed else None
    checkpoint, leaves = latest[-1] if latest else (None, [])
    head = next((leaf.seq for leaf in leaves if leaf.chain == chain), None)
    return ChainStatus(
        chain=chain,
        entries=len(stored),
        intact=problem is None,
        problem=None if problem is None else str(problem),
        checkpoint_number=None if checkpoint is None else checkpoint.number,
        checkpoint_at=None if checkpoint is None else checkpoint.at,
        checkpoint_seq=head,
    )


async def entries_per_day(
    db: AsyncSession,
    scope: TenantScope,
    settings: Settings,
    org_id: str,
    first: date,
    last: date,
) -> dict[date, dict[str, int]]:
    """Entry counts per UTC day and outcome, every day of [first, last] present."""
    scope.require(org_id)
    day = func.substr(AuditEntryRow.at, 1, 10)
    rows = await db.execute(
        select(day.label("day"), AuditEntryRow.outcome, func.count())
        .where(
            AuditEntryRow.chain == chain_name(org_id, settings.region),
            AuditEntryRow.at >= first.isoformat(),
            AuditEntryRow.at < (last + timedelta(days=1)).isoformat(),
        )
        .group_by(day, AuditEntryRow.outcome)
    )
    days: dict[date, dict[str, int]] = {
        first + timedelta(days=n): {} for n in range((last - first).days + 1)
    }
    for when, outcome, count in rows:
        days.setdefault(date.fromisoformat(when), {})[outcome] = count
    return days
