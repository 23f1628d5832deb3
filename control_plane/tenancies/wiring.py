"""How the composition root builds the tenancies machinery: drivers (with a secret
reveal that records its justification in the ledger) and the reconciler."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import Clock
from control_plane.settings import Settings
from control_plane.sovereignty.keys import service as secrets
from control_plane.tenancies.drivers.registry import Drivers, RevealSecret
from control_plane.tenancies.reconciler import Reconciler


def secret_revealer(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings
) -> RevealSecret:
    """Reveal a provider secret for a driver; the ``keys.use`` ledger entry is committed
    before the value is handed over."""

    async def reveal(name: str, reason: str) -> bytes:
        async with sessionmaker() as db:
            value = await secrets.reveal_by_name(
                db, org_id=None, name=name, justification=reason,
                actor=secrets.Actor.system("tenancies.drivers"), clock=clock, settings=settings,
            )  # fmt: skip
            await db.commit()
        return value

    return reveal


def build_reconciler(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings
) -> Reconciler:
    drivers = Drivers(settings, secret_revealer(sessionmaker, clock, settings))
    return Reconciler(sessionmaker=sessionmaker, drivers=drivers, clock=clock, settings=settings)


def wake_reconciler(request: Any) -> None:
    """Nudge the app's in-process reconciler so new work starts without waiting for a tick."""
    reconciler = getattr(request.app.state, "reconciler", None)
    if reconciler is not None:
        reconciler.wake.set()
