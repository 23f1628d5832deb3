"""The tax rule on a line follows the seller's and the buyer's jurisdictions."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.taxes import tax_rule


class TestTaxRule:
    @pytest.mark.parametrize(
        ("seller", "country", "subdivision", "tax_id", "rate", "words"),
        [
            ("CA", "CA", "QC", "", "0.14975", "GST 5% + QST 9.975%"),
            ("CA", "CA", "ON", "", "0.13", "HST 13%"),
            ("CA", "CA", "AB", "", "0.05", "GST 5%"),
            ("CA", "FR", "", "", "0", "zero-rated"),
            ("SE", "SE", "", "", "0.25", "SE VAT 25%"),
            ("SE", "DE", "", "DE123456789", "0", "reverse charge"),
            ("SE", "DE", "", "", "0.25", "EU consumer"),
            ("SE", "US", "", "", "0", "Outside the scope"),
            ("US", "US", "NY", "", "0", "no sales tax"),
        ],
    )
    def test_rule_and_rate(
        self, seller: str, country: str, subdivision: str, tax_id: str, rate: str, words: str
    ) -> None:
        rule = tax_rule(seller, country, subdivision, tax_id)
        assert rule.rate == Decimal(rate)
        assert words in rule.label

    def test_reverse_charge_names_the_customers_vat_id(self) -> None:
        assert "FR40303265045" in tax_rule("SE", "FR", "", "FR40303265045").label
