"""Budgets: set, list, delete; evaluate month-to-date spend against them, alert once per
threshold and month (signed webhook and e-mail through the outbox, an entry in the
ledger), and stop new work at 100 % where the budget says so."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from billing.budgets.models import Budget, BudgetAlert
from billing.budgets.schemas import AlertRead, BudgetRead, BudgetSet
from billing.invoices.inputs import load_period
from billing.invoices.service import month_bounds, rate_org
from billing.outbox.service import enqueue
from billing.rating import major, round_minor
from control_plane.audit.store import record
from control_plane.clock import Clock
from control_plane.errors import NotFound
from control_plane.identity.authz import TenantScope
from control_plane.ids import new_id
from control_plane.settings import Settings
from control_plane.sovereignty.keys import service as keys
from control_plane.sovereignty.keys.models import SecretKind

__all__ = ["delete_budget", "evaluate", "list_budgets", "set_budget"]


def budget_read(
    b: Budget, alerts: Sequence[BudgetAlert] = (), secret: str | None = None
) -> BudgetRead:
    percent = (Decimal(b.spent_minor) * 100 / b.amount_minor).quantize(Decimal("0.1"))
    return BudgetRead(
        id=b.id, org_id=b.org_id, project_id=b.project_id, currency=b.currency,
        amount=major(b.amount_minor), thresholds=list(b.thresholds), hard_stop=b.hard_stop,
        webhook_url=b.webhook_url, email=b.email, spent=major(b.spent_minor),
        percent_used=percent, stopped=b.stopped, evaluated_at=b.evaluated_at,
        webhook_secret=secret,
        alerts=[AlertRead(a.month, a.threshold, major(a.spent_minor), a.at) for a in alerts],
    )  # fmt: skip


async def set_budget(
    db: AsyncSession, scope: TenantScope, org_id: str, data: BudgetSet, *,
    clock: Clock, settings: Settings,
) -> BudgetRead:  # fmt: skip
    """Create the budget for (organization, project, currency) or change it."""
    scope.require(org_id)
    budget = await db.scalar(select(Budget).where(
        Budget.org_id == org_id, Budget.project_id == data.project_id,
        Budget.currency == data.currency))  # fmt: skip
    now = clock.now()
    if budget is None:
        budget = Budget(id=new_id("bud"), org_id=org_id, project_id=data.project_id,
                        currency=data.currency, webhook_secret="", spent_minor=0, stopped=False,
                        evaluated_at=None, created_at=now)  # fmt: skip
        db.add(budget)
    budget.amount_minor = round_minor(data.amount, data.currency)
    budget.thresholds = sorted(set(data.thresholds))
    budget.hard_stop, budget.webhook_url, budget.email = (
        data.hard_stop,
        data.webhook_url,
        data.email,
    )
    budget.stopped = budget.hard_stop and budget.spent_minor >= budget.amount_minor
    secret = None
    if budget.webhook_url and not budget.webhook_secret:
        secret = f"whsec_{secrets.token_urlsafe(32)}"
        stored = await keys.put(
            db, org_id=org_id, name=f"budget-webhook/{budget.id}", kind=SecretKind.OTHER,
            value=secret.encode(), actor=keys.Actor.of(scope.principal),
            clock=clock, settings=settings, description="signs budget alert webhooks",
        )  # fmt: skip
        budget.webhook_secret = stored.id
    try:
        await db.flush()
    except IntegrityError as exc:  # a concurrent request created it first
        raise NotFound(detail="The budget changed meanwhile; try again.") from exc
    return budget_read(budget, await _alerts(db, budget.id), secret)


async def _alerts(db: AsyncSession, budget_id: str) -> list[BudgetAlert]:
    rows = await db.scalars(select(BudgetAlert).where(BudgetAlert.budget_id == budget_id)
                            .order_by(BudgetAlert.at))  # fmt: skip
    return list(rows)


async def list_budgets(db: AsyncSession, scope: TenantScope, org_id: str) -> list[BudgetRead]:
    scope.require(org_id)
    rows = await db.scalars(select(Budget).where(Budget.org_id == org_id)
                            .order_by(Budget.project_id, Budget.currency))  # fmt: skip
    return [budget_read(b, await _alerts(db, b.id)) for b in rows]


async def delete_budget(db: AsyncSession, scope: TenantScope, org_id: str, budget_id: str) -> None:
    scope.require(org_id)
    budget = await db.get(Budget, budget_id)
    if budget is None or budget.org_id != org_id:
        raise NotFound(detail="No such budget.")
    await db.delete(budget)
    await db.flush()


async def evaluate(db: AsyncSession, now: datetime, settings: Settings) -> int:
    """Recompute every budget's month-to-date spend; returns the alerts raised."""
    budgets = list(await db.scalars(select(Budget).order_by(Budget.id)))
    if not budgets:
        return 0
    month = now.astimezone(UTC).strftime("%Y-%m")
    start, end = month_bounds(month)
    inputs = await load_period(db, start, end, {b.org_id for b in budgets})
    raised = 0
    for budget in budgets:
        lines = rate_org(inputs, budget.org_id, budget.currency, budget.project_id or None)
        budget.spent_minor = sum(line.amount_minor for line in lines)
        budget.evaluated_at = now
        budget.stopped = budget.hard_stop and budget.spent_minor >= budget.amount_minor
        raised += await _alert(db, budget, month, now, settings)
    await db.flush()
    return raised


async def _alert(
    db: AsyncSession, budget: Budget, month: str, now: datetime, settings: Settings
) -> int:
    done = {a.threshold for a in await db.scalars(select(BudgetAlert).where(
        BudgetAlert.budget_id == budget.id, BudgetAlert.month == month))}  # fmt: skip
    crossed = [
        t
        for t in budget.thresholds
        if t not in done and budget.spent_minor * 100 >= t * budget.amount_minor
    ]
    for threshold in crossed:
        db.add(
            BudgetAlert(
                id=new_id("bal"),
                budget_id=budget.id,
                month=month,
                threshold=threshold,
                spent_minor=budget.spent_minor,
                at=now,
            )
        )
        event = {
            "type": "budget.threshold_crossed", "budget_id": budget.id, "org_id": budget.org_id,
            "project_id": budget.project_id or None, "month": month, "threshold": threshold,
            "currency": budget.currency, "amount": str(major(budget.amount_minor)),
            "spent": str(major(budget.spent_minor)),
            "stopped": budget.stopped and threshold >= 100, "at": now.isoformat(),
        }  # fmt: skip
        key = f"budget:{budget.id}:{month}:{threshold}"
        if budget.webhook_url:
            await enqueue(db, key=f"{key}:webhook", topic="webhook", org_id=budget.org_id,
                          payload={"budget_id": budget.id, "event": event}, now=now)  # fmt: skip
        if budget.email:
            await enqueue(db, key=f"{key}:email", topic="email", org_id=budget.org_id, payload={
                "to": budget.email,
                "subject": f"Budget {threshold}% reached: {event['spent']} of "
                           f"{event['amount']} {budget.currency} ({month})",
                "text": _email_text(event),
            }, now=now)  # fmt: skip
        await record(
            db, org_id=budget.org_id, region=settings.region, actor_kind="system",
            actor_id="billing", action="budget.threshold_crossed", target_type="budget",
            target_id=budget.id, request_id=None, source_address=None, outcome="success",
            payload=event, at=now,
        )  # fmt: skip
    return len(crossed)


def _email_text(event: Mapping[str, object]) -> str:
    scope = f"project {event['project_id']}" if event["project_id"] else "your organization"
    stop = ("\nNew tenancies and inference requests are refused until the budget is raised "
            "or the month ends.\n") if event["stopped"] else ""  # fmt: skip
    return (
        f"Spending for {scope} reached {event['threshold']}% of its monthly budget:\n"
        f"{event['spent']} of {event['amount']} {event['currency']} in {event['month']} "
        f"(before tax).\n{stop}"
    )
