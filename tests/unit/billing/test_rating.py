"""Rating turns usage into invoice lines: the right rate, night prices, minimums,
commitments, contract prices, half-even rounding at the line, reproducible digests."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from billing.rating import CommitmentTerm, Override, Rate, Usage, digest, rate_usage, round_minor
from billing.taxes import TaxRule

QC = TaxRule("Québec: GST 5% + QST 9.975%", Decimal("0.14975"))
NONE = TaxRule("no tax", Decimal(0))
RATES = [
    Rate("gpu_seconds", Decimal("4.00"), gpu_model="h100", region="ca-qc-1",
         night_unit_price=Decimal("2.50"), minimum_seconds=60),
    Rate("gpu_seconds", Decimal("4.40"), gpu_model="h100", tenancy_kind="vm", region="ca-qc-1"),
    Rate("gpu_seconds", Decimal("1.00"), region="ca-qc-1"),  # any other GPU
    Rate("tokens_out", Decimal("0.60"), model="chat-v1", region="ca-qc-1"),
    Rate("tokens_in", Decimal("0.20"), region="ca-qc-1"),
]  # fmt: skip


def gpu(seconds: str, **kw: Any) -> Usage:
    """H100 bare-metal GPU time of tenancy ten_1 in ca-qc-1, unless ``kw`` says otherwise."""
    base = Usage("gpu_seconds", Decimal(seconds), region="ca-qc-1", gpu_model="h100",
                 tenancy_kind="bare_metal", tenancy="ten_1")  # fmt: skip
    return replace(base, **kw)


class TestRates:
    def test_gpu_hours_are_billed_per_second_at_the_most_specific_rate(self) -> None:
        lines = rate_usage([gpu("5400"), gpu("1800", tenancy_kind="vm", tenancy="ten_2")], RATES,
                           currency="CAD", tax=NONE)  # fmt: skip
        by_kind = {line.dimensions["tenancy_kind"]: line for line in lines}
        assert by_kind["bare_metal"].quantity == Decimal("1.5")
        assert by_kind["bare_metal"].amount_minor == 600  # 1.5 h x 4.00
        assert by_kind["vm"].unit_price == Decimal("4.40")
        assert by_kind["vm"].amount_minor == 220  # 0.5 h x 4.40

    def test_night_hours_take_the_night_price(self) -> None:
        [line] = rate_usage([gpu("3600", night=True)], RATES, currency="CAD", tax=NONE)
        assert line.unit_price == Decimal("2.50")
        assert "night" in line.description

    def test_tokens_are_priced_per_million_by_model(self) -> None:
        lines = rate_usage(
            [Usage("tokens_out", Decimal(2_500_000), region="ca-qc-1", model="chat-v1"),
             Usage("tokens_in", Decimal(1_000_000), region="ca-qc-1", model="chat-v1")],
            RATES, currency="CAD", tax=NONE,
        )  # fmt: skip
        assert sorted(line.amount_minor for line in lines) == [20, 150]

    def test_usage_without_a_rate_is_shown_at_zero_and_says_so(self) -> None:
        [line] = rate_usage([Usage("cached_tokens", Decimal(10**6), region="ca-qc-1")], RATES,
                            currency="CAD", tax=NONE)  # fmt: skip
        assert line.amount_minor == 0
        assert "no rate" in line.description


class TestMinimumsCommitmentsContracts:
    def test_a_short_tenancy_is_billed_its_minimum(self) -> None:
        [line] = rate_usage([gpu("20")], RATES, currency="CAD", tax=NONE)
        assert line.quantity == Decimal("0.016667")  # 60 s, not the 20 s used
        assert line.amount_minor == 7  # 60/3600 h x 4.00 = 0.0667

    def test_a_commitment_is_billed_whole_and_covers_matching_usage(self) -> None:
        term = CommitmentTerm("cmt_1", "ca-qc-1", "h100", Decimal(2), Decimal("3.00"),
                              Decimal(10), "Dec")  # fmt: skip
        lines = rate_usage([gpu(str(3600 * 25))], RATES, currency="CAD", tax=NONE,
                           commitments=[term])  # fmt: skip
        reserved = next(line for line in lines if line.kind == "commitment")
        covered = next(line for line in lines if line.kind == "commitment_usage")
        usage = next(line for line in lines if line.kind == "gpu_seconds")
        assert reserved.amount_minor == 6000  # 2 GPUs x 10 h x 3.00, used or not
        assert covered.quantity == 20
        assert covered.amount_minor == 0
        assert usage.quantity == 5
        assert usage.amount_minor == 2000

    def test_contract_price_and_discount_replace_the_book(self) -> None:
        fixed = Override("ca-qc-1", "gpu_seconds", gpu_model="h100", unit_price=Decimal("3.10"))
        off = Override("ca-qc-1", "tokens_in", discount_percent=Decimal(25))
        lines = rate_usage(
            [gpu("3600"), Usage("tokens_in", Decimal(10**6), region="ca-qc-1")],
            RATES, currency="CAD", tax=NONE, overrides=[fixed, off],
        )  # fmt: skip
        assert sorted(line.amount_minor for line in lines) == [15, 310]
        assert all("contract" in line.description for line in lines)


class TestRoundingAndTaxes:
    def test_half_even_at_the_line(self) -> None:
        assert round_minor(Decimal("0.125"), "CAD") == 12
        assert round_minor(Decimal("0.135"), "CAD") == 14
        assert round_minor(Decimal("1234.5"), "SEK", minor=True) == 1234

    def test_tax_is_computed_per_line_with_the_rule_shown(self) -> None:
        [line] = rate_usage([gpu("3600")], RATES, currency="CAD", tax=QC)
        assert line.amount_minor == 400
        assert line.tax_minor == 60  # 400 x 0.14975 = 59.9 -> 60
        assert line.tax_rule == QC.label

    @given(st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=20),
           st.permutations(range(20)))  # fmt: skip
    def test_rating_is_reproducible_whatever_the_order(
        self, seconds: list[int], order: list[int]
    ) -> None:
        usage = [gpu(str(s), tenancy=f"ten_{i}") for i, s in enumerate(seconds)]
        shuffled = [usage[i] for i in order if i < len(usage)]
        first = rate_usage(usage, RATES, currency="CAD", tax=QC)
        again = rate_usage(shuffled, RATES, currency="CAD", tax=QC)
        assert digest(first) == digest(again)
        assert sum(line.amount_minor for line in first) >= 0
