"""Reaching a running tenancy: power actions and console links (VMs), and the tenancy's
access credential (a Kubernetes tenancy's kubeconfig), through the driver's capabilities.

These call the driver from the request (they are quick, and the person waits for them)
with a time limit; a driver without the capability answers 409 naming what it cannot do.

The credential is issued by the driver (at provisioning, or on rotation), stored only
encrypted in the organization's secret store in the tenancy's region, and shown once: the
reveal deletes the stored copy, so a later request must rotate (which invalidates every
earlier credential) to get a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import Conflict, NotFound, ServiceUnavailable
from control_plane.identity.authz import ProviderScope, TenantScope
from control_plane.identity.roles import Permission
from control_plane.settings import Settings
from control_plane.sovereignty.access.enforcement import require_access
from control_plane.sovereignty.access.lifecycle import ResourceType
from control_plane.sovereignty.keys import service as secrets
from control_plane.sovereignty.keys.models import SecretKind
from control_plane.tenancies import repository
from control_plane.tenancies.drivers.base import (
    Allocation,
    ConsoleAccess,
    Credential,
    Driver,
    HasConsole,
    IssuesCredentials,
    PermanentError,
    PowerAction,
    PowerControl,
    RetryableError,
)
from control_plane.tenancies.drivers.registry import Drivers
from control_plane.tenancies.lifecycle import TenancyState
from control_plane.tenancies.models import Tenancy, TenancyCredential
from control_plane.tenancies.reads import allocation_of
from control_plane.tenancies.schemas import ConsoleRead, CredentialRead, CredentialReveal
from control_plane.tenancies.timeline import Actor, note

__all__ = [
    "console",
    "credential_status",
    "operator_console",
    "power",
    "reveal_credential",
    "rotate_credential",
    "store_credential",
]

DRIVER_SECONDS = 30.0
CONSOLE_SECONDS = 300
T = TypeVar("T")


async def power(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    tenancy_id: str,
    action: PowerAction,
    *,
    drivers: Drivers,
    actor: Actor,
    clock: Clock,
) -> str:
    """Start, stop or reboot the tenancy's machines; the step lands on its timeline."""
    scope.require(org_id, Permission.TENANCIES_WRITE)
    tenancy = await repository.tenant_tenancy(db, scope, org_id, tenancy_id)
    driver, allocation = await _active(db, tenancy, drivers)
    if not isinstance(driver, PowerControl):
        raise _cannot(tenancy, "power actions")
    await db.rollback()  # nothing written yet: no transaction open while the host works
    result = await _call(driver.power(allocation, action))
    tenancy = await repository.tenant_tenancy(db, scope, org_id, tenancy_id, for_update=True)
    if result.facts:  # e.g. power: off, shown with the tenancy's other facts
        tenancy.facts = {**tenancy.facts, **result.facts}
    note(db, tenancy, "step", result.detail or f"{action.value} done", actor, clock.now())
    return result.detail or f"{action.value} done"


async def console(
    db: AsyncSession, scope: TenantScope, org_id: str, tenancy_id: str, *, drivers: Drivers
) -> ConsoleRead:
    """A short-lived console link for the tenant (its own machine, no approval needed)."""
    scope.require(org_id, Permission.TENANCIES_WRITE)
    tenancy = await repository.tenant_tenancy(db, scope, org_id, tenancy_id)
    driver, allocation = await _active(db, tenancy, drivers)
    await db.rollback()  # a read only: no transaction open while the host answers
    return await _console(tenancy, driver, allocation)


async def _console(tenancy: Tenancy, driver: Driver, allocation: Allocation) -> ConsoleRead:
    if not isinstance(driver, HasConsole):
        raise _cannot(tenancy, "a console")
    access: ConsoleAccess = await _call(driver.console(allocation, CONSOLE_SECONDS))
    return ConsoleRead(url=access.url, protocol=access.protocol, expires_at=access.expires_at)


async def operator_console(
    db: AsyncSession,
    operator: ProviderScope,
    org_id: str,
    tenancy_id: str,
    purpose: str,
    *,
    drivers: Drivers,
    clock: Clock,
    settings: Settings,
) -> ConsoleRead:
    """A provider operator's console link: only under a grant the organization approved
    (or break-glass), the use written to the organization's ledger; refusals too."""
    tenancy = await db.get(Tenancy, tenancy_id)
    if tenancy is None or tenancy.org_id != org_id:
        raise NotFound(detail="No such tenancy in this organization.")
    await require_access(
        db, operator=operator, org_id=org_id, resource_type=ResourceType.TENANCY,
        resource_id=tenancy.id, purpose=f"console: {purpose}", clock=clock, settings=settings,
    )  # fmt: skip
    driver, allocation = await _active(db, tenancy, drivers)
    # The grant's use is committed (and the organization's ledger chain released) before
    # the host is asked: an access exercised stays recorded whatever the host answers.
    await db.commit()
    return await _console(tenancy, driver, allocation)


async def credential_status(
    db: AsyncSession, scope: TenantScope, org_id: str, tenancy_id: str
) -> CredentialRead:
    scope.require(org_id, Permission.TENANCIES_READ)
    tenancy = await repository.tenant_tenancy(db, scope, org_id, tenancy_id)
    row = await db.get(TenancyCredential, tenancy.id)
    if row is None:
        raise Conflict(detail="This tenancy has no credential yet (it is issued when it is up).")
    return _read(row)


async def reveal_credential(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    tenancy_id: str,
    *,
    actor: Actor,
    clock: Clock,
    settings: Settings,
) -> CredentialReveal:
    """The credential, once: the stored copy is deleted as it is shown (both ledgered)."""
    scope.require(org_id, Permission.TENANCIES_WRITE)
    tenancy = await repository.tenant_tenancy(db, scope, org_id, tenancy_id, for_update=True)
    row = await db.get(TenancyCredential, tenancy.id, with_for_update=True)
    if row is None:
        raise Conflict(detail="This tenancy has no credential yet (it is issued when it is up).")
    if row.secret_id is None:
        raise Conflict(
            detail=(
                f"The {row.kind} was already shown (at {row.revealed_at:%Y-%m-%d %H:%M} UTC) and "
                "is not kept: rotate it to get a new one."
            )
        )
    value = await secrets.reveal(
        db, org_id=tenancy.org_id, secret_id=row.secret_id,
        justification=f"{row.kind} of tenancy {tenancy.id} shown to its owner once",
        actor=secrets.Actor(actor.kind, actor.id), clock=clock, settings=settings,
    )  # fmt: skip
    await secrets.delete(db, org_id=tenancy.org_id, secret_id=row.secret_id)
    row.secret_id = None
    row.revealed_at = clock.now()
    row.revealed_by = actor.label[:80]
    note(db, tenancy, "step", f"{row.kind} shown (not kept)", actor, row.revealed_at)
    return CredentialReveal(
        kind=row.kind, value=value.decode(), issued_at=row.issued_at, expires_at=row.expires_at
    )


async def rotate_credential(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    tenancy_id: str,
    *,
    drivers: Drivers,
    actor: Actor,
    clock: Clock,
    settings: Settings,
) -> CredentialRead:
    """Invalidate every earlier credential and issue a new one, to be revealed once."""
    scope.require(org_id, Permission.TENANCIES_WRITE)
    tenancy = await repository.tenant_tenancy(db, scope, org_id, tenancy_id)
    driver, allocation = await _active(db, tenancy, drivers)
    if not isinstance(driver, IssuesCredentials):
        raise _cannot(tenancy, "access credentials")
    await db.rollback()  # nothing written yet: no transaction open while the cluster works
    credential: Credential = await _call(driver.issue_credentials(allocation, rotate=True))
    tenancy = await repository.tenant_tenancy(db, scope, org_id, tenancy_id, for_update=True)
    row = await store_credential(
        db, tenancy, credential, actor=actor, clock=clock, settings=settings
    )
    note(db, tenancy, "step", f"{credential.kind} rotated: earlier ones no longer work",
         actor, clock.now())  # fmt: skip
    return _read(row)


async def store_credential(
    db: AsyncSession,
    tenancy: Tenancy,
    credential: Credential,
    *,
    actor: Actor,
    clock: Clock,
    settings: Settings,
) -> TenancyCredential:
    """Keep ``credential`` encrypted until it is shown (replacing any unshown one)."""
    row = await db.get(TenancyCredential, tenancy.id)
    if row is not None and row.secret_id is not None:
        await secrets.delete(db, org_id=tenancy.org_id, secret_id=row.secret_id)
    stored = await secrets.put(
        db, org_id=tenancy.org_id, name=f"tenancy/{tenancy.id}/{credential.kind}",
        kind=SecretKind.KUBECONFIG if credential.kind == "kubeconfig" else SecretKind.OTHER,
        value=credential.value, actor=secrets.Actor(actor.kind, actor.id), clock=clock,
        settings=settings, description=f"{credential.kind} of {tenancy.name}, shown once",
    )  # fmt: skip
    now = clock.now()
    if row is None:
        row = TenancyCredential(tenancy_id=tenancy.id, org_id=tenancy.org_id, rotations=0)
        db.add(row)
    else:
        row.rotations += 1
    row.kind = credential.kind
    row.secret_id = stored.id
    row.issued_at = now
    row.expires_at = _utc(credential.expires_at)
    row.revealed_at = None
    row.revealed_by = None
    await db.flush()
    return row


def _read(row: TenancyCredential) -> CredentialRead:
    return CredentialRead(
        kind=row.kind, issued_at=row.issued_at, expires_at=row.expires_at,
        shown=row.secret_id is None, shown_at=row.revealed_at, rotations=row.rotations,
    )  # fmt: skip


async def _active(
    db: AsyncSession, tenancy: Tenancy, drivers: Drivers
) -> tuple[Driver, Allocation]:
    if tenancy.state != TenancyState.ACTIVE:
        raise Conflict(detail=f"The tenancy is {tenancy.state}; this needs it active.")
    live = (await repository.live_allocations(db, [tenancy.id])).get(tenancy.id, [])
    allocation = await allocation_of(db, tenancy, live)
    return drivers.for_tenancy(allocation.region, allocation.kind), allocation


def _cannot(tenancy: Tenancy, what: str) -> Conflict:
    return Conflict(
        detail=f"A {tenancy.kind} tenancy on driver {tenancy.driver} does not offer {what}."
    )


async def _call(call: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(call, DRIVER_SECONDS)
    except (TimeoutError, RetryableError) as exc:
        raise ServiceUnavailable(
            detail=f"The region's infrastructure did not answer ({exc or 'timed out'}); "
            "try again shortly."
        ) from exc
    except PermanentError as exc:
        raise Conflict(detail=str(exc)) from exc


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
