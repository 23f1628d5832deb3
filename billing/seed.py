"""Demo billing data for ``cpctl seed demo`` (idempotent): a price book per demo region,
the demo organization's billing profile and budget, 30 days of sample usage (source
``demo-seed``), and last month's invoice, finalized."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.budgets.models import Budget
from billing.invoices.models import Invoice
from billing.invoices.service import finalize, month_bounds, run
from billing.prices.models import BillingProfile, PriceBook
from billing.prices.schemas import PriceBookCreate, RateIn
from billing.prices.service import create_book
from control_plane.clock import Clock
from control_plane.identity import organizations
from control_plane.ids import new_id
from control_plane.metering.service import NewUsage, record_usage

__all__ = ["seed_billing_demo"]

SOURCE = "demo-seed"
# Per GPU-hour (GPU models) and per million tokens, in each region's currency.
PRICES = {
    "ca-qc-1": (
        "America/Toronto",
        {"h100": "4.10", "h200": "5.40", "l40s": "1.45"},
        ("0.25", "0.90"),
    ),
    "se-north-1": ("Europe/Stockholm", {"h100": "31.00", "a100": "19.50"}, ("2.00", "7.00")),
    "us-east-1": ("America/New_York", {"a100": "2.10", "l40s": "1.05"}, ("0.18", "0.70")),
}


def _d(value: str) -> Decimal:
    return Decimal(value)


async def seed_billing_demo(
    db: AsyncSession, clock: Clock, endpoint_id: str = ""
) -> dict[str, int]:
    """``endpoint_id``: the demo endpoint, whose sample tokens and replica hours it gets."""
    now = clock.now()
    added = {"price_books": 0, "usage_events": 0, "invoices": 0}
    for region, (zone, gpus, (tokens_in, tokens_out)) in PRICES.items():
        if await db.scalar(select(func.count()).where(PriceBook.region_code == region)):
            continue
        rates = [
            RateIn(
                "gpu_seconds",
                _d(p),
                gpu_model=g,
                night_unit_price=_d(p) * 6 / 10,
                minimum_seconds=60,
            )
            for g, p in gpus.items()
        ]
        rates += [
            RateIn("tokens_in", _d(tokens_in)),
            RateIn("tokens_out", _d(tokens_out)),
            RateIn("cached_tokens", _d(tokens_in) / 4),
        ]
        book = PriceBookCreate(
            effective_from=now - timedelta(days=90),
            rates=rates,
            timezone=zone,
            note="demo list prices",
        )
        await create_book(db, region, book, actor="seed", now=now)
        added["price_books"] += 1
    org = await organizations.find_org(db, "demo")
    if org is None:
        return added
    if await db.get(BillingProfile, org.id) is None:
        db.add(
            BillingProfile(
                org_id=org.id,
                legal_name="Demo Research Lab Inc.",
                country="CA",
                subdivision="QC",
                tax_id="",
                email="billing@demo.example",
                updated_at=now,
            )
        )
    if not await db.scalar(select(func.count()).where(Budget.org_id == org.id)):
        db.add(
            Budget(
                id=new_id("bud"),
                org_id=org.id,
                project_id="",
                currency="CAD",
                amount_minor=500_000,
                thresholds=[50, 80, 100],
                hard_stop=False,
                webhook_url="",
                webhook_secret="",
                email="billing@demo.example",
                spent_minor=0,
                stopped=False,
                evaluated_at=None,
                created_at=now,
            )
        )
    events = _usage(org.id, now, endpoint_id or "ep_demo")
    added["usage_events"] = len(events) - await record_usage(db, events, now)
    await db.flush()
    last_month = (now.astimezone(UTC).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    start, end = month_bounds(last_month)
    if not await db.scalar(
        select(func.count()).where(Invoice.org_id == org.id, Invoice.period_start == start)
    ):
        await run(db, start, end, now, [org.id])
        for invoice in await db.scalars(
            select(Invoice).where(Invoice.org_id == org.id, Invoice.period_start == start)
        ):
            await finalize(db, invoice.id, now)
            added["invoices"] += 1
    return added


def _usage(org_id: str, now: datetime, endpoint_id: str) -> list[NewUsage]:
    """Hourly samples over the last 40 days: two training tenancies (busy by day) and an
    inference endpoint's tokens; deterministic ids, so seeding again adds nothing."""
    rng = random.Random(2026)  # noqa: S311 - sample data
    first = (now - timedelta(days=40)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hours = int((now - first).total_seconds() // 3600) - 1
    events = []
    for h in range(hours):
        at = first + timedelta(hours=h)
        day = 12 <= at.hour <= 23
        for tenancy, gpu, count in (("ten_demo_train", "h100", 8), ("ten_demo_dev", "l40s", 1)):
            busy = rng.random() < (0.9 if day else 0.35)
            if busy:
                events.append(
                    NewUsage(
                        source=SOURCE,
                        event_id=f"{tenancy}/{at.isoformat()}",
                        org_id=org_id,
                        project_id=None,
                        type="gpu_seconds",
                        value=Decimal(3600 * count),
                        window_start=at,
                        window_end=at + timedelta(hours=1),
                        dimensions={
                            "region": "ca-qc-1",
                            "gpu_model": gpu,
                            "tenancy_kind": "bare_metal",
                            "tenancy": tenancy,
                        },
                    )
                )
        events.append(
            NewUsage(  # the endpoint's replica: a quarter of an L40S, held every hour
                source=SOURCE,
                event_id=f"demo-chat/replica/{at.isoformat()}",
                org_id=org_id,
                project_id=None,
                type="gpu_seconds",
                value=Decimal(900),
                window_start=at,
                window_end=at + timedelta(hours=1),
                dimensions={
                    "region": "ca-qc-1",
                    "gpu_model": "l40s",
                    "tenancy_kind": "inference",
                    "tenancy": "ten_demo_replica",
                    "endpoint": endpoint_id,
                },
            )
        )
        for kind, scale in (("tokens_in", 90_000), ("tokens_out", 30_000)):
            events.append(
                NewUsage(
                    source=SOURCE,
                    event_id=f"demo-chat/{kind}/{at.isoformat()}",
                    org_id=org_id,
                    project_id=None,
                    type=kind,
                    value=Decimal(int(scale * (1.5 if day else 0.4) * rng.uniform(0.6, 1.4))),
                    window_start=at,
                    window_end=at + timedelta(hours=1),
                    dimensions={
                        "region": "ca-qc-1",
                        "endpoint": endpoint_id,
                        "model": "demo-chat-v1",
                    },
                )
            )
    return events
