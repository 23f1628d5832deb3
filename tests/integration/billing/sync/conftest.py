"""Billing fixtures: a session factory on the test's event loop, an organization with a
billing profile, finalized invoices, budgets with webhook secrets, and the peers (a
loopback HTTP receiver, an SMTP server, localstripe)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.budgets.models import Budget
from billing.invoices.models import Invoice, InvoiceLine
from billing.prices.models import BillingProfile
from control_plane.clock import FrozenClock
from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.ids import new_id
from control_plane.settings import Settings
from control_plane.sovereignty.keys import service as secrets
from control_plane.sovereignty.keys.models import SecretKind
from tests.conftest import need_peer
from tests.fixtures.factories import make_org
from tests.fixtures.peers.localstripe import LocalStripe, localstripe_available

START = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def frozen() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
async def sessions(app: Litestar) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the app's database from the test's own event loop."""
    engine = make_engine(app.state.settings.database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Customer:
    org_id: str
    legal_name: str
    email: str


async def make_customer(db: AsyncSession, name: str = "Érable Compute Inc.") -> Customer:
    """An organization with a billing profile (committed)."""
    tenant = await make_org(db)
    email = f"billing@{tenant.slug}.test"
    db.add(
        BillingProfile(
            org_id=tenant.org_id, legal_name=name, country="CA", subdivision="QC",
            tax_id="", email=email, updated_at=START,
        )
    )  # fmt: skip
    await db.commit()
    return Customer(tenant.org_id, name, email)


async def make_invoice(
    db: AsyncSession, org_id: str, *, credits_minor: int = 0, number: str | None = None
) -> Invoice:
    """A finalized CAD invoice of two lines, one taxed with QST, one with GST (committed)."""
    invoice_id = new_id("inv")
    lines = [
        # position, kind, description, quantity, unit, unit price, amount, rule, rate, tax
        (1, "gpu_seconds", "H100 GPU time, ca-qc-1", Decimal("36.5"), "GPU-hour",
         Decimal("2.400000"), 8760, "CA-QC QST", Decimal("0.09975"), 874),
        (2, "tokens_in", "Input tokens, llama-3-8b", Decimal("12.25"), "M tokens",
         Decimal("0.200000"), 245, "CA GST", Decimal("0.05"), 12),
    ]  # fmt: skip
    subtotal = sum(line[6] for line in lines)
    tax = sum(line[9] for line in lines)
    invoice = Invoice(
        id=invoice_id, org_id=org_id, kind="invoice", status="finalized",
        number=number or f"CA-{invoice_id[-6:]}", currency="CAD",
        period_start=datetime(2026, 10, 1, tzinfo=UTC), period_end=START,
        subtotal_minor=subtotal, tax_minor=tax, total_minor=subtotal + tax,
        credits_minor=credits_minor, amount_due_minor=subtotal + tax - credits_minor,
        customer={"country": "CA", "subdivision": "QC"}, digest="0" * 64, corrects_id=None,
        reason="", created_at=START, finalized_at=START, paid_at=None, voided_at=None,
        stripe_invoice_id=None,
    )  # fmt: skip
    db.add(invoice)
    await db.flush()
    for position, kind, text, qty, unit, price, amount, rule, rate, line_tax in lines:
        db.add(
            InvoiceLine(
                id=new_id("inl"), invoice_id=invoice_id, position=position, kind=kind,
                description=text, dimensions={}, quantity=qty, unit=unit, unit_price=price,
                amount_minor=amount, tax_rule=rule, tax_rate=rate, tax_minor=line_tax,
            )
        )  # fmt: skip
    await db.commit()
    return invoice


async def make_budget(
    db: AsyncSession, settings: Settings, org_id: str, url: str, secret: bytes
) -> Budget:
    """A budget whose webhook secret is kept by the key service (committed)."""
    stored = await secrets.put(
        db, org_id=org_id, name=f"budget-webhook-{new_id('x')[-8:]}", kind=SecretKind.OTHER,
        value=secret, actor=secrets.Actor.system("tests"), clock=FrozenClock(START),
        settings=settings,
    )  # fmt: skip
    budget = Budget(
        id=new_id("bud"), org_id=org_id, project_id="", currency="CAD", amount_minor=100_000,
        thresholds=[50, 80, 100], hard_stop=False, webhook_url=url, webhook_secret=stored.id,
        email="", spent_minor=0, stopped=False, evaluated_at=None, created_at=START,
    )  # fmt: skip
    db.add(budget)
    await db.commit()
    return budget


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    """A fresh localstripe (``--from-scratch``) for the module."""
    need_peer(localstripe_available())
    with LocalStripe() as peer:
        yield peer
