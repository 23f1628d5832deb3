"""Rules against a generated fleet with planted waste: precision and recall per rule."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from itertools import islice

import pytest

from control_plane.insights.accuracy import RuleScore, score
from control_plane.insights.features import Thresholds
from control_plane.insights.findings import Finding, Rule
from control_plane.insights.fleetgen import Fleet, fleet_features, generate
from control_plane.insights.rules import evaluate

LOOK_ALIKES = (
    "bursty",  # idle gaps, but busy lately
    "memory_heavy",  # light on SM, but no cheaper card holds its memory
    "compute_heavy",  # little memory, but hot
    "weak_gpu",  # one GPU less busy, but above the busy share
    "bare_metal_underused",  # k of n busy, but cannot shrink in place
    "some_nights",  # day-heavy, but busy on some nights
    "new_lease",  # empty, but too new to judge
    "quiet_endpoint",  # no tokens for under a day
    "peaky_endpoint",  # low on average, but its peaks need every replica
)


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return generate(600, 14, seed=11)


@pytest.fixture(scope="module")
def findings(fleet: Fleet) -> list[Finding]:
    tenancies, endpoints = fleet_features(fleet)
    return evaluate(tenancies, endpoints, Thresholds())


@pytest.fixture(scope="module")
def scores(fleet: Fleet, findings: list[Finding]) -> dict[str, RuleScore]:
    return score(findings, fleet)


class TestPlantedFleet:
    def test_every_rule_has_planted_positives(self, scores: dict[str, RuleScore]) -> None:
        assert {rule: s["planted"] for rule, s in scores.items() if s["planted"] < 10} == {}

    def test_look_alikes_are_planted(self, fleet: Fleet) -> None:
        profiles = Counter(t.profile for t in fleet.tenancies)
        profiles.update(e.profile for e in fleet.endpoints)

        assert {p: profiles[p] for p in LOOK_ALIKES if profiles[p] < 5} == {}

    @pytest.mark.parametrize("rule", list(Rule), ids=str)
    def test_precision_and_recall_reach_95_percent(
        self, scores: dict[str, RuleScore], rule: Rule
    ) -> None:
        s = scores[rule.value]

        assert s["precision"] >= 0.95, s
        assert s["recall"] >= 0.95, s

    def test_findings_carry_savings(self, findings: list[Finding]) -> None:
        assert all(f.monthly_savings > 0 and f.currency == "CAD" for f in findings)


class TestScore:
    def test_a_missed_and_a_false_finding_lower_recall_and_precision(
        self, fleet: Fleet, findings: list[Finding]
    ) -> None:
        idle = [f for f in findings if f.rule is Rule.IDLE_GPUS]
        healthy = next(t for t in fleet.tenancies if t.profile == "healthy")
        wrong = [*idle[1:], replace(idle[0], target_id=healthy.tenancy_id)]

        s = score(wrong, fleet)["idle_gpus"]

        assert s["found"] == len(idle)
        assert s["recall"] == (len(idle) - 1) / len(idle)
        assert s["precision"] == (len(idle) - 1) / len(idle)


class TestGenerator:
    def test_same_seed_same_rows_other_seed_other_rows(self) -> None:
        def head(seed: int) -> list[tuple[object, ...]]:
            return list(islice(generate(60, 3, seed=seed).rows(), 500))

        assert head(1) == head(1)
        assert head(1) != head(2)

    def test_rows_are_hourly_with_a_few_gaps(self, fleet: Fleet) -> None:
        t = next(t for t in fleet.tenancies if t.profile == "healthy")
        rows = list(fleet.tenancy_rows(t))

        assert {r.hour.minute for r in rows} == {0}
        assert all(r.hour.tzinfo is not None for r in rows)
        assert 0.9 * len(t.gpu_ids) * fleet.hours <= len(rows) <= len(t.gpu_ids) * fleet.hours
        assert all(0 <= r.util_mean <= r.util_p95 <= r.util_max <= 100 for r in rows)
        assert all(r.mem_max_mib <= r.mem_total_mib for r in rows)
