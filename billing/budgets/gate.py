"""The budget gate the control plane asks before new work (placement, inference): which
organizations and projects a hard-stop budget has stopped, cached for a few seconds so
the gateway's hot path costs a dictionary lookup."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.budgets.models import Budget

__all__ = ["BudgetStops"]


class BudgetStops:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl: float = 5.0) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl
        self._stopped: dict[tuple[str, str], str] = {}
        self._loaded_at = float("-inf")

    def forget(self) -> None:
        """Read the budgets again on the next question (after an evaluation)."""
        self._loaded_at = float("-inf")

    async def _refresh(self) -> None:
        async with self._sessionmaker() as db:
            rows = await db.execute(
                select(Budget.org_id, Budget.project_id, Budget.currency, Budget.amount_minor)
                .where(Budget.stopped.is_(True))
            )  # fmt: skip
            self._stopped = {
                (org, project): f"The monthly budget of {amount / 100:.2f} {currency} for "
                f"{'project ' + project if project else 'this organization'} is spent; new "
                "work is refused until the budget is raised or the month ends."
                for org, project, currency, amount in rows
            }
        self._loaded_at = time.monotonic()

    async def refusal(self, org_id: str, project_id: str | None) -> str | None:
        if time.monotonic() - self._loaded_at > self._ttl:
            await self._refresh()
        return self._stopped.get((org_id, "")) or (
            self._stopped.get((org_id, project_id)) if project_id else None
        )
