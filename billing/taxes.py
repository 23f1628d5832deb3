"""Which tax applies to a line: a per-jurisdiction rate table keyed by the seller's
jurisdiction (the region's) and the buyer's country, subdivision and tax id.

The rule applied is written on every invoice line. Rates as of 2026; simplifications
are stated in the rule text and in docs/billing.md (no US sales tax on cloud services,
Swedish VAT for EU consumers, i.e. no OSS registration).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = ["TaxRule", "tax_rule"]

EU = frozenset({"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU",
                "IE", "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES",
                "SE"})  # fmt: skip
_HST = {"ON": Decimal("0.13"), "NB": Decimal("0.15"), "NL": Decimal("0.15"),
        "NS": Decimal("0.14"), "PE": Decimal("0.15")}  # fmt: skip
_GST = Decimal("0.05")
_QST = Decimal("0.09975")
_VAT = {"SE": Decimal("0.25"), "DE": Decimal("0.19"), "FR": Decimal("0.20"), "FI": Decimal("0.255")}


@dataclass(frozen=True, slots=True)
class TaxRule:
    label: str  # shown on the line, e.g. "Québec: GST 5% + QST 9.975%"
    rate: Decimal  # the combined rate applied to the line amount


def tax_rule(seller: str, country: str, subdivision: str = "", tax_id: str = "") -> TaxRule:
    """The rule for a sale by a seller in jurisdiction ``seller`` to this buyer."""
    country, subdivision = country.upper(), subdivision.upper()
    if seller == "CA":
        return _canada(country, subdivision)
    if seller in _VAT:
        return _eu(seller, country, tax_id)
    if seller == "US":
        return TaxRule("United States: no sales tax collected on cloud services", Decimal(0))
    return TaxRule(f"No tax rule for seller jurisdiction {seller}", Decimal(0))


def _pct(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}"


def _canada(country: str, subdivision: str) -> TaxRule:
    if country != "CA":
        return TaxRule("Canada: export of services, zero-rated (0%)", Decimal(0))
    if subdivision == "QC":
        return TaxRule("Québec: GST 5% + QST 9.975%", _GST + _QST)
    if subdivision in _HST:
        return TaxRule(f"{subdivision}: HST {_pct(_HST[subdivision])}%", _HST[subdivision])
    return TaxRule(f"{subdivision or 'Canada'}: GST 5%", _GST)


def _eu(seller: str, country: str, tax_id: str) -> TaxRule:
    rate = _VAT[seller]
    if country == seller:
        return TaxRule(f"{seller} VAT {_pct(rate)}%", rate)
    if country in EU and tax_id:
        return TaxRule(
            f"EU B2B reverse charge (VAT Directive art. 196): VAT due by the customer, "
            f"VAT id {tax_id}", Decimal(0),
        )  # fmt: skip
    if country in EU:
        return TaxRule(f"{seller} VAT {_pct(rate)}% (EU consumer)", rate)
    return TaxRule("Outside the scope of EU VAT (customer outside the EU)", Decimal(0))
