"""Rating: usage, prices and taxes in, invoice lines out. Pure (plain data, no I/O), so
the same inputs always give the same lines (re-rating reproduces an invoice exactly).

Rounding, the one rule: a line's amount is quantity (GPU-hours or millions of tokens)
times unit price, rounded half-to-even to the currency's minor unit; its tax is the
amount times the rule's rate, rounded the same way. Totals are sums of rounded lines.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal

from billing.taxes import TaxRule

__all__ = [
    "CommitmentTerm", "Line", "Override", "Rate", "Usage", "digest", "major", "rate_usage",
]  # fmt: skip

SECONDS_PER_HOUR = Decimal(3600)
MILLION = Decimal(1_000_000)
MINOR_UNITS = {"CAD": 2, "USD": 2, "EUR": 2, "SEK": 2}
_UNIT = {"gpu_seconds": "GPU-hour", "tokens_in": "1M tokens", "tokens_out": "1M tokens",
         "cached_tokens": "1M tokens"}  # fmt: skip
_NAMES = {"gpu_seconds": "GPU time", "tokens_in": "Input tokens", "tokens_out": "Output tokens",
          "cached_tokens": "Cached input tokens"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Usage:
    """One aggregated group of usage (seconds of GPU time or tokens)."""

    type: str
    quantity: Decimal
    region: str
    project: str = ""
    gpu_model: str = ""
    tenancy_kind: str = ""
    tenancy: str = ""
    endpoint: str = ""
    model: str = ""
    night: bool = False
    book_version: int = 0


@dataclass(frozen=True, slots=True)
class Rate:
    usage_type: str
    unit_price: Decimal  # per GPU-hour or per million tokens
    gpu_model: str = ""  # "" matches any
    tenancy_kind: str = ""
    model: str = ""
    night_unit_price: Decimal | None = None
    minimum_seconds: int = 0
    book_version: int = 0
    region: str = ""


@dataclass(frozen=True, slots=True)
class Override:
    region: str
    usage_type: str
    gpu_model: str = ""
    model: str = ""
    unit_price: Decimal | None = None
    discount_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class CommitmentTerm:
    id: str
    region: str
    gpu_model: str
    gpus: Decimal
    hourly_price: Decimal  # per GPU
    hours: Decimal  # of the term inside the invoice period (prorated)
    label: str  # "2026-12-01 to 2026-12-31"


@dataclass(frozen=True, slots=True)
class Line:
    kind: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount_minor: int
    tax_rule: str
    tax_rate: Decimal
    tax_minor: int
    dimensions: dict[str, str] = field(default_factory=dict)


def rate_usage(
    usage: Iterable[Usage],
    rates: Sequence[Rate],
    *,
    currency: str,
    tax: TaxRule,
    overrides: Sequence[Override] = (),
    commitments: Sequence[CommitmentTerm] = (),
) -> list[Line]:
    rows = _apply_minimums(list(usage), rates)
    lines: list[Line] = []
    for term in sorted(commitments, key=lambda t: t.id):
        rows, covered = _cover(rows, term)
        lines.extend(_commitment_lines(term, covered, currency, tax))
    grouped: dict[tuple[str, str, str, str, str, str, bool, Decimal, str], Decimal] = {}
    for row in rows:
        price, note = _price(row, rates, overrides)
        key = (row.type, row.region, row.project, row.gpu_model, row.tenancy_kind, row.model,
               row.night, price, note)  # fmt: skip
        grouped[key] = grouped.get(key, Decimal(0)) + row.quantity
    for key in sorted(grouped, key=lambda k: tuple(str(p) for p in k)):
        kind, region, project, gpu_model, tenancy_kind, model, night, price, note = key
        quantity = _units(kind, grouped[key])
        if quantity == 0:
            continue
        dims = {k: str(v) for k, v in (("region", region), ("project", project),
                ("gpu_model", gpu_model), ("tenancy_kind", tenancy_kind), ("model", model))
                if v}  # fmt: skip
        label = ", ".join(str(p) for p in (gpu_model or model, tenancy_kind, region) if p)
        description = f"{_NAMES[kind]}: {label}" + (" (night rate)" if night else "")
        if note:
            description += f" ({note})"
        lines.append(_line(kind, description, quantity, _UNIT[kind], price, currency, tax, dims))
    return lines


def _units(kind: str, quantity: Decimal) -> Decimal:
    return quantity / SECONDS_PER_HOUR if kind == "gpu_seconds" else quantity / MILLION


def _line(
    kind: str, description: str, quantity: Decimal, unit: str, unit_price: Decimal,
    currency: str, tax: TaxRule, dims: dict[str, str],
) -> Line:  # fmt: skip
    amount = round_minor(quantity * unit_price, currency)
    tax_minor = round_minor(Decimal(amount) * tax.rate, currency, minor=True)
    return Line(kind=kind, description=description[:300], quantity=quantity.quantize(
        Decimal("0.000001"), rounding=ROUND_HALF_EVEN), unit=unit, unit_price=unit_price,
        amount_minor=amount, tax_rule=tax.label, tax_rate=tax.rate, tax_minor=tax_minor,
        dimensions=dims)  # fmt: skip


def round_minor(amount: Decimal, currency: str, *, minor: bool = False) -> int:
    """``amount`` (in major units, or already minor when ``minor``) to integer minor units,
    half to even."""
    scale = Decimal(10) ** MINOR_UNITS.get(currency, 2)
    value = amount if minor else amount * scale
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def major(minor: int) -> Decimal:
    """Integer minor units back to the currency's major unit (every billing currency here,
    CAD, SEK, EUR and USD, has two decimals), e.g. 1050 -> 10.50."""
    return (Decimal(minor) / 100).quantize(Decimal("0.01"))


def _match(rate: Rate, row: Usage) -> int:
    """How specifically ``rate`` matches ``row`` (-1: not at all)."""
    if rate.usage_type != row.type or (rate.region and rate.region != row.region):
        return -1
    if rate.book_version and rate.book_version != row.book_version:
        return -1
    score = 0
    for wanted, actual, weight in ((rate.gpu_model, row.gpu_model, 4),
                                   (rate.model, row.model, 4),
                                   (rate.tenancy_kind, row.tenancy_kind, 2)):  # fmt: skip
        if wanted:
            if wanted != actual:
                return -1
            score += weight
    return score


def _best_rate(row: Usage, rates: Sequence[Rate]) -> Rate | None:
    scored = [(s, i) for i, r in enumerate(rates) if (s := _match(r, row)) >= 0]
    return rates[max(scored)[1]] if scored else None


def _price(row: Usage, rates: Sequence[Rate], overrides: Sequence[Override]) -> tuple[Decimal, str]:
    rate = _best_rate(row, rates)
    if rate is None:
        return Decimal(0), "no rate in the price book"
    price = rate.night_unit_price if row.night and rate.night_unit_price is not None else (
        rate.unit_price)  # fmt: skip
    for o in overrides:
        if (o.region == row.region and o.usage_type == row.type
                and o.gpu_model in ("", row.gpu_model) and o.model in ("", row.model)):  # fmt: skip
            if o.unit_price is not None:
                return o.unit_price, "contract price"
            if o.discount_percent is not None:
                discounted = price * (Decimal(100) - o.discount_percent) / Decimal(100)
                return discounted.quantize(Decimal("0.000001")), f"contract -{o.discount_percent}%"
    return price, ""


def _apply_minimums(rows: list[Usage], rates: Sequence[Rate]) -> list[Usage]:
    """A tenancy used for less than its rate's minimum is billed the minimum (added to
    its largest day-rate row)."""
    totals: dict[str, Decimal] = {}
    largest: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row.type != "gpu_seconds" or not row.tenancy:
            continue
        totals[row.tenancy] = totals.get(row.tenancy, Decimal(0)) + row.quantity
        j = largest.get(row.tenancy)
        if j is None or row.quantity > rows[j].quantity:
            largest[row.tenancy] = i
    for tenancy, total in totals.items():
        i = largest[tenancy]
        rate = _best_rate(rows[i], rates)
        if rate is not None and 0 < total < rate.minimum_seconds:
            rows[i] = replace(rows[i], quantity=rows[i].quantity + rate.minimum_seconds - total)
    return rows


def _cover(rows: list[Usage], term: CommitmentTerm) -> tuple[list[Usage], Decimal]:
    """Take up to the term's GPU-seconds off matching usage (day rows first)."""
    left = term.gpus * term.hours * SECONDS_PER_HOUR
    covered = Decimal(0)
    order = sorted(range(len(rows)), key=lambda i: (rows[i].night, rows[i].tenancy, i))
    out = list(rows)
    for i in order:
        row = out[i]
        if left <= 0:
            break
        if (
            row.type != "gpu_seconds"
            or row.region != term.region
            or row.gpu_model != (term.gpu_model)
        ):
            continue
        take = min(left, row.quantity)
        out[i] = replace(row, quantity=row.quantity - take)
        left -= take
        covered += take
    return out, covered


def _commitment_lines(
    term: CommitmentTerm, covered: Decimal, currency: str, tax: TaxRule
) -> list[Line]:
    dims = {"region": term.region, "gpu_model": term.gpu_model, "commitment": term.id}
    reserved = _line(
        "commitment",
        f"Commitment: {term.gpus.normalize()} x {term.gpu_model} reserved in {term.region}, "
        f"{term.label}",
        term.gpus * term.hours, "GPU-hour", term.hourly_price, currency, tax, dims,
    )  # fmt: skip
    used = _line(
        "commitment_usage", f"GPU time covered by the commitment ({term.gpu_model}, "
        f"{term.region})", covered / SECONDS_PER_HOUR, "GPU-hour", Decimal(0), currency, tax, dims,
    )  # fmt: skip
    return [reserved, used]


def digest(lines: Sequence[Line]) -> str:
    """SHA-256 of the lines' canonical JSON: equal digests, identical invoices."""
    canonical = [
        {k: str(v) if isinstance(v, Decimal) else v for k, v in asdict(line).items()}
        for line in lines
    ]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
