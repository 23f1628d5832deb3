"""Precision and recall of the rules against a generated fleet's planted labels."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from control_plane.insights.findings import Finding, Rule
from control_plane.insights.fleetgen import Fleet


class RuleScore(TypedDict):
    precision: float  # share of the rule's findings that were planted (1.0 when none found)
    recall: float  # share of the planted targets the rule found (1.0 when none planted)
    planted: int
    found: int


def score(findings: Iterable[Finding], fleet: Fleet) -> dict[str, RuleScore]:
    """Per rule: how many targets were planted and found, with precision and recall."""
    planted: dict[Rule, set[str]] = {rule: set() for rule in Rule}
    for t in fleet.tenancies:
        for rule in t.expected:
            planted[rule].add(t.tenancy_id)
    for e in fleet.endpoints:
        for rule in e.expected:
            planted[rule].add(e.endpoint_id)
    found: dict[Rule, set[str]] = {rule: set() for rule in Rule}
    for f in findings:
        found[f.rule].add(f.target_id)
    scores: dict[str, RuleScore] = {}
    for rule in Rule:
        hits = len(found[rule] & planted[rule])
        scores[rule.value] = RuleScore(
            precision=hits / len(found[rule]) if found[rule] else 1.0,
            recall=hits / len(planted[rule]) if planted[rule] else 1.0,
            planted=len(planted[rule]),
            found=len(found[rule]),
        )
    return scores
