"""Invoice runs and the invoice lifecycle: draft -> finalized -> paid, or void; credit
notes correct finalized invoices. Services never commit; the request (or task) does.

A run rates a period for every organization with usage or commitments into one draft
per organization and currency; running it again re-rates drafts (identical usage gives
identical lines: same digest) and never touches finalized invoices.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.invoices.inputs import PeriodInputs, load_period
from billing.invoices.models import CreditUse, Invoice, InvoiceLine
from billing.invoices.schemas import InvoiceLineRead, InvoiceRead, InvoiceRunResult
from billing.outbox.service import enqueue
from billing.prices.models import CreditGrant
from billing.rating import Line, digest, major, rate_usage, round_minor
from control_plane.audit.hints import hint
from control_plane.db.bulk import upsert
from control_plane.errors import Conflict, FieldError, InvalidInput, NotFound
from control_plane.identity.authz import TenantScope
from control_plane.ids import new_id

__all__ = ["finalize", "get_invoice", "list_invoices", "mark_paid", "month_bounds", "run", "void"]

_MINOR = Decimal(100)


MAX_PERIOD = timedelta(days=366)


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of ``YYYY-MM``, UTC."""
    year, number = (int(p) for p in month.split("-"))
    if not 2000 <= year <= 2200:
        raise InvalidInput(
            detail="The month must be between 2000-01 and 2200-12.",
            errors=[FieldError("body.month", "out of range")],
        )
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def invoice_read(inv: Invoice, lines: list[InvoiceLine] | None = None) -> InvoiceRead:
    return InvoiceRead(
        id=inv.id,
        org_id=inv.org_id,
        kind=inv.kind,
        status=inv.status,
        number=inv.number,
        currency=inv.currency,
        period_start=inv.period_start,
        period_end=inv.period_end,
        subtotal=major(inv.subtotal_minor),
        tax=major(inv.tax_minor),
        total=major(inv.total_minor),
        credits_applied=major(inv.credits_minor),
        amount_due=major(inv.amount_due_minor),
        digest=inv.digest,
        corrects_id=inv.corrects_id,
        reason=inv.reason,
        customer=dict(inv.customer),
        created_at=inv.created_at,
        finalized_at=inv.finalized_at,
        paid_at=inv.paid_at,
        voided_at=inv.voided_at,
        lines=[
            InvoiceLineRead(
                ln.position,
                ln.kind,
                ln.description,
                ln.dimensions,
                ln.quantity,
                ln.unit,
                ln.unit_price,
                major(ln.amount_minor),
                ln.tax_rule,
                ln.tax_rate,
                major(ln.tax_minor),
            )
            for ln in sorted(lines or [], key=lambda ln: ln.position)
        ],
    )


def rate_org(
    inputs: PeriodInputs, org_id: str, currency: str, project: str | None = None
) -> list[Line]:
    """The organization's lines in one currency (one project's, without commitments)."""
    regions = {r for r, c in inputs.region_currency.items() if c == currency}
    return rate_usage(
        [
            u
            for u in inputs.usage.get(org_id, ())
            if u.region in regions and (project is None or u.project == project)
        ],
        [r for r in inputs.rates if r.region in regions],
        currency=currency,
        tax=inputs.tax_for(org_id, currency),
        overrides=[o for o in inputs.overrides.get(org_id, ()) if o.region in regions],
        commitments=[
            c for c in inputs.commitments.get(org_id, ()) if c.region in regions and project is None
        ],
    )


async def run(
    db: AsyncSession,
    start: datetime,
    end: datetime,
    now: datetime,
    org_ids: list[str] | None = None,
) -> InvoiceRunResult:
    for name, at in (("start", start), ("end", end)):
        if at.tzinfo is None or not 2000 <= at.year <= 2200:
            raise InvalidInput(
                detail=f"{name} needs a UTC offset and a year from 2000 to 2200.",
                errors=[FieldError(f"body.{name}", "no offset or out of range")],
            )
    if not start < end <= start + MAX_PERIOD:
        raise InvalidInput(
            detail="The period must end after it starts, at most 366 days later.",
            errors=[FieldError("body.end", "not after start or too long")],
        )
    hint(db, target_type="invoice_run", target_id=f"{start.isoformat()}/{end.isoformat()}")
    inputs = await load_period(db, start, end, org_ids)
    orgs = sorted(set(inputs.usage) | set(inputs.commitments))
    existing = {
        (i.org_id, i.currency): i
        for i in await db.scalars(
            select(Invoice).where(
                Invoice.kind == "invoice",
                Invoice.period_start == start,
                Invoice.period_end == end,
                Invoice.status != "void",
            )
        )
    }
    drafts = unchanged = kept = 0
    replaced: list[str] = []
    new_invoices: list[dict[str, Any]] = []
    new_lines: list[dict[str, Any]] = []
    for org in orgs:
        for currency in inputs.currencies_of(org):
            lines = rate_org(inputs, org, currency)
            current = existing.get((org, currency))
            if current is not None and current.status != "draft":
                kept += 1
                continue
            lines_digest = digest(lines)
            if current is not None and current.digest == lines_digest:
                unchanged += 1
                continue
            drafts += 1
            if current is None:
                row = _invoice_row(org, currency, start, end, lines, lines_digest, now)
                new_invoices.append(row)
                invoice_id = row["id"]
            else:
                replaced.append(current.id)
                _set_totals(current, lines, lines_digest)
                invoice_id = current.id
            new_lines.extend(_line_rows(invoice_id, lines))
    if replaced:
        await db.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id.in_(replaced)))
    await db.flush()  # the re-rated drafts' totals, before their new lines
    await upsert(db, cast(Table, Invoice.__table__), new_invoices, conflict=("id",))
    await upsert(db, cast(Table, InvoiceLine.__table__), new_lines, conflict=("id",))
    return InvoiceRunResult(
        period_start=start,
        period_end=end,
        drafts=drafts,
        unchanged=unchanged,
        finalized_kept=kept,
        organizations=len(orgs),
    )


def _totals(lines: list[Line]) -> tuple[int, int]:
    return sum(ln.amount_minor for ln in lines), sum(ln.tax_minor for ln in lines)


def _invoice_row(
    org: str,
    currency: str,
    start: datetime,
    end: datetime,
    lines: list[Line],
    dig: str,
    now: datetime,
) -> dict[str, Any]:
    subtotal, tax = _totals(lines)
    return {
        "id": new_id("inv"),
        "org_id": org,
        "kind": "invoice",
        "status": "draft",
        "number": None,
        "currency": currency,
        "period_start": start,
        "period_end": end,
        "subtotal_minor": subtotal,
        "tax_minor": tax,
        "total_minor": subtotal + tax,
        "credits_minor": 0,
        "amount_due_minor": subtotal + tax,
        "customer": {},
        "digest": dig,
        "corrects_id": None,
        "reason": "",
        "created_at": now,
        "finalized_at": None,
        "paid_at": None,
        "voided_at": None,
        "stripe_invoice_id": None,
    }


def _set_totals(inv: Invoice, lines: list[Line], dig: str) -> None:
    subtotal, tax = _totals(lines)
    inv.subtotal_minor, inv.tax_minor, inv.total_minor = subtotal, tax, subtotal + tax
    inv.amount_due_minor, inv.credits_minor, inv.digest = subtotal + tax, 0, dig


def _line_rows(invoice_id: str, lines: list[Line]) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(lines, start=1):
        row = asdict(line)
        row.update(id=new_id("invl"), invoice_id=invoice_id, position=n)
        rows.append(row)
    return rows


async def _invoice(db: AsyncSession, invoice_id: str, org_id: str | None = None) -> Invoice:
    inv = await db.get(Invoice, invoice_id)
    if inv is None or (org_id is not None and inv.org_id != org_id):
        raise NotFound(detail="No such invoice.")
    return inv


async def _lines(db: AsyncSession, invoice_id: str) -> list[InvoiceLine]:
    return list(await db.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id)))


async def get_invoice(
    db: AsyncSession, scope: TenantScope, org_id: str, invoice_id: str
) -> InvoiceRead:
    scope.require(org_id)
    inv = await _invoice(db, invoice_id, org_id)
    return invoice_read(inv, await _lines(db, inv.id))


async def list_invoices(
    db: AsyncSession, scope: TenantScope, org_id: str, limit: int = 100
) -> list[InvoiceRead]:
    scope.require(org_id)
    rows = await db.scalars(
        select(Invoice)
        .where(Invoice.org_id == org_id)
        .order_by(Invoice.period_start.desc(), Invoice.created_at.desc())
        .limit(limit)
    )
    return [invoice_read(i) for i in rows]


async def operator_invoice(db: AsyncSession, invoice_id: str) -> InvoiceRead:
    inv = await _invoice(db, invoice_id)
    return invoice_read(inv, await _lines(db, inv.id))


async def finalize(
    db: AsyncSession, invoice_id: str, now: datetime, *, push_to_stripe: bool = False
) -> InvoiceRead:
    """Re-rate the draft, freeze it, number it, draw credits; it never changes again."""
    inv = await _invoice(db, invoice_id)
    if inv.status != "draft":
        raise Conflict(detail=f"The invoice is {inv.status}; only drafts are finalized.")
    inputs = await load_period(db, inv.period_start, inv.period_end, [inv.org_id])
    lines = rate_org(inputs, inv.org_id, inv.currency)
    dig = digest(lines)
    if dig != inv.digest:
        await db.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id == inv.id))
        if lines:
            await db.execute(insert(cast(Table, InvoiceLine.__table__)), _line_rows(inv.id, lines))
        _set_totals(inv, lines, dig)
    profile = inputs.profiles.get(inv.org_id)
    inv.customer = (
        {
            "legal_name": profile.legal_name,
            "country": profile.country,
            "subdivision": profile.subdivision,
            "tax_id": profile.tax_id,
            "email": profile.email,
        }
        if profile
        else {}
    )
    inv.number = await _next_number(db, inv.org_id, "INV")
    inv.status, inv.finalized_at = "finalized", now
    inv.credits_minor = await _draw_credits(db, inv, now)
    inv.amount_due_minor = inv.total_minor - inv.credits_minor
    if inv.amount_due_minor == 0 and inv.total_minor > 0:
        inv.status, inv.paid_at = "paid", now  # credits paid it all
    if push_to_stripe:
        await enqueue(
            db,
            key=f"stripe.invoice:{inv.id}",
            topic="stripe.invoice",
            org_id=inv.org_id,
            payload={"invoice_id": inv.id},
            now=now,
        )
    await db.flush()
    return invoice_read(inv, await _lines(db, inv.id))


async def _next_number(db: AsyncSession, org_id: str, prefix: str) -> str:
    count = await db.scalar(
        select(func.count())
        .select_from(Invoice)
        .where(Invoice.org_id == org_id, Invoice.number.is_not(None))
    )
    return f"{prefix}-{org_id.removeprefix('org_')[:8].upper()}-{(count or 0) + 1:05d}"


async def _draw_credits(db: AsyncSession, inv: Invoice, now: datetime) -> int:
    grants = await db.scalars(
        select(CreditGrant)
        .where(
            CreditGrant.org_id == inv.org_id,
            CreditGrant.currency == inv.currency,
            CreditGrant.remaining_minor > 0,
            (CreditGrant.expires_at.is_(None)) | (CreditGrant.expires_at > now),
        )
        .order_by(CreditGrant.expires_at.is_(None), CreditGrant.expires_at, CreditGrant.granted_at)
        .with_for_update()
    )
    left = inv.total_minor
    used = 0
    for grant in grants:
        if left <= 0:
            break
        take = min(left, grant.remaining_minor)
        grant.remaining_minor -= take
        db.add(
            CreditUse(
                id=new_id("cru"), invoice_id=inv.id, grant_id=grant.id, amount_minor=take, at=now
            )
        )
        left -= take
        used += take
    return used


async def mark_paid(db: AsyncSession, invoice_id: str, now: datetime) -> InvoiceRead:
    inv = await _invoice(db, invoice_id)
    if inv.status == "paid":
        return invoice_read(inv, await _lines(db, inv.id))  # idempotent
    if inv.status != "finalized":
        raise Conflict(detail=f"The invoice is {inv.status}; only finalized invoices are paid.")
    inv.status, inv.paid_at = "paid", now
    await db.flush()
    return invoice_read(inv, await _lines(db, inv.id))


async def void(db: AsyncSession, invoice_id: str, reason: str, now: datetime) -> InvoiceRead:
    """Void an unpaid finalized invoice (credits drawn go back); paid ones take a credit note."""
    inv = await _invoice(db, invoice_id)
    if inv.status == "void":
        return invoice_read(inv, await _lines(db, inv.id))
    if inv.status != "finalized":
        raise Conflict(
            detail=f"The invoice is {inv.status}: drafts are re-rated, paid invoices "
            "are corrected with a credit note."
        )
    for use in await db.scalars(select(CreditUse).where(CreditUse.invoice_id == inv.id)):
        grant = await db.get(CreditGrant, use.grant_id)
        if grant is not None:
            grant.remaining_minor += use.amount_minor
    inv.status, inv.voided_at, inv.reason = "void", now, reason
    await db.flush()
    return invoice_read(inv, await _lines(db, inv.id))


async def credit_note(
    db: AsyncSession, invoice_id: str, amount: Decimal, reason: str, now: datetime
) -> InvoiceRead:
    """A finalized credit note against a finalized or paid invoice; its total goes to the
    customer's credit balance (drawn by the next invoice)."""
    inv = await _invoice(db, invoice_id)
    if inv.kind != "invoice" or inv.status not in ("finalized", "paid"):
        raise Conflict(detail="Credit notes correct finalized or paid invoices only.")
    credited = (
        await db.scalar(
            select(func.coalesce(func.sum(Invoice.subtotal_minor), 0)).where(
                Invoice.corrects_id == inv.id, Invoice.kind == "credit_note"
            )
        )
        or 0
    )
    subtotal = round_minor(amount, inv.currency)
    if subtotal > inv.subtotal_minor - credited:
        raise InvalidInput(
            detail=f"At most {major(inv.subtotal_minor - credited)} {inv.currency} is left "
            "to credit on this invoice.",
            errors=[FieldError("body.amount", "exceeds the invoice")],
        )
    lines = await _lines(db, inv.id)
    rule = max(lines, key=lambda ln: ln.amount_minor) if lines else None
    rate = rule.tax_rate if rule else Decimal(0)
    tax = round_minor(Decimal(subtotal) * rate, inv.currency, minor=True)
    note = Invoice(
        **_invoice_row(inv.org_id, inv.currency, inv.period_start, inv.period_end, [], "", now)
    )
    note.kind, note.status, note.corrects_id, note.reason = (
        "credit_note",
        "finalized",
        inv.id,
        reason,
    )
    note.subtotal_minor, note.tax_minor, note.total_minor = subtotal, tax, subtotal + tax
    note.amount_due_minor, note.finalized_at, note.customer = 0, now, inv.customer
    note.number = await _next_number(db, inv.org_id, "CN")
    line = Line(
        kind="credit",
        description=f"Credit on {inv.number}: {reason}"[:300],
        quantity=Decimal(1),
        unit="credit",
        unit_price=major(subtotal),
        amount_minor=subtotal,
        tax_rule=rule.tax_rule if rule else "no tax",
        tax_rate=rate,
        tax_minor=tax,
    )
    note.digest = digest([line])
    db.add(note)
    await db.flush()
    db.add(InvoiceLine(**_line_rows(note.id, [line])[0]))
    db.add(
        CreditGrant(
            id=new_id("cred"),
            org_id=inv.org_id,
            currency=inv.currency,
            amount_minor=subtotal + tax,
            remaining_minor=subtotal + tax,
            reason=f"Credit note {note.number}",
            granted_at=now,
            expires_at=None,
        )
    )
    await db.flush()
    return invoice_read(note, await _lines(db, note.id))


async def period_invoices(
    db: AsyncSession, start: datetime, end: datetime, limit: int = 500
) -> list[InvoiceRead]:
    """Operators: every organization's invoices and credit notes of a period, without lines."""
    rows = await db.scalars(
        select(Invoice).where(Invoice.period_start >= start, Invoice.period_start < end)
        .order_by(Invoice.org_id, Invoice.created_at).limit(limit)
    )  # fmt: skip
    return [invoice_read(i) for i in rows]
