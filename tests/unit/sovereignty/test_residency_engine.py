"""The residency engine, property-tested: no decision ever escapes the policy's allow-lists."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from control_plane.sovereignty.residency.engine import (
    EU_MEMBER_STATES,
    RULE_ALLOWED_JURISDICTIONS,
    RULE_CROSS_BORDER_EXPORT,
    RULE_KEYS_IN_REGION,
    RULE_NO_ALLOWED_LOCATIONS,
    RULE_OPERATOR_JURISDICTIONS,
    Policy,
    RegionFacts,
    decide_export,
    decide_key_location,
    decide_operator_access,
    decide_placement,
    group_of,
)

JURISDICTIONS = ("CA", "US", "SE", "DE", "FR", "FI", "GB", "NO", "JP", "CH")
REGION_CODES = ("ca-qc-1", "ca-on-1", "se-north-1", "de-fra-1", "us-east-1", "gb-lon-1", "jp-1")

jurisdictions = st.sampled_from(JURISDICTIONS)
regions = st.builds(
    lambda code, j: RegionFacts(code=code, jurisdiction=j, sovereignty_group=group_of(j)),
    st.sampled_from(REGION_CODES),
    jurisdictions,
)
code_sets = st.frozensets(st.sampled_from(REGION_CODES), max_size=3)
jurisdiction_sets = st.frozensets(jurisdictions, max_size=4)
group_sets = st.frozensets(st.sampled_from(("EU", "CA", "US", "GB")), max_size=2)
policies = st.builds(
    Policy,
    version=st.integers(min_value=0, max_value=50),
    name=st.sampled_from(("Generated", "Team policy")),
    classification=st.sampled_from(("Protected B", "Internal")),
    allowed_jurisdictions=jurisdiction_sets,
    allowed_regions=code_sets,
    allowed_groups=group_sets,
    keys_in_region=st.booleans(),
    cross_border_export=st.booleans(),
    operator_jurisdictions=jurisdiction_sets,
    unrestricted=st.booleans(),
)
restricted_policies = policies.map(lambda p: replace(p, unrestricted=False))


def _permitted(policy: Policy, region: RegionFacts) -> bool:
    """The allowed set, written independently of the engine."""
    return (
        region.code in policy.allowed_regions
        or region.jurisdiction in policy.allowed_jurisdictions
        or region.sovereignty_group in policy.allowed_groups
    )


class TestPlacementProperties:
    @given(restricted_policies, regions)
    def test_never_allows_a_region_outside_the_allowed_set(
        self, policy: Policy, region: RegionFacts
    ) -> None:
        decision = decide_placement(policy, region)
        assert decision.allowed == _permitted(policy, region)

    @given(policies, regions)
    def test_every_decision_names_the_region_and_a_residency_rule(
        self, policy: Policy, region: RegionFacts
    ) -> None:
        decision = decide_placement(policy, region)
        assert region.code in decision.explanation
        assert decision.rule.startswith("residency.")

    @given(policies.map(lambda p: replace(p, unrestricted=True)), regions)
    def test_an_unrestricted_policy_allows_every_region(
        self, policy: Policy, region: RegionFacts
    ) -> None:
        assert decide_placement(policy, region).allowed

    @given(regions)
    def test_a_restricted_policy_with_no_allow_clause_allows_nothing(
        self, region: RegionFacts
    ) -> None:
        empty = Policy(
            1, "Nowhere", "x", frozenset(), frozenset(), frozenset(), False, False, frozenset()
        )
        decision = decide_placement(empty, region)
        assert not decision.allowed
        assert decision.rule == RULE_NO_ALLOWED_LOCATIONS


class TestOperatorAccessProperties:
    @given(restricted_policies, jurisdictions)
    def test_never_allows_an_operator_jurisdiction_outside_the_list(
        self, policy: Policy, home: str
    ) -> None:
        decision = decide_operator_access(policy, home)
        assert decision.allowed == (home in policy.operator_jurisdictions)
        assert decision.rule == RULE_OPERATOR_JURISDICTIONS
        assert home in decision.explanation


class TestKeyLocationProperties:
    @given(policies.map(lambda p: replace(p, keys_in_region=True)), regions, regions)
    def test_keys_in_region_allows_only_the_data_region_itself(
        self, policy: Policy, data: RegionFacts, key: RegionFacts
    ) -> None:
        decision = decide_key_location(policy, data, key)
        assert decision.allowed == (key.code == data.code)
        assert decision.rule == RULE_KEYS_IN_REGION

    @given(restricted_policies.map(lambda p: replace(p, keys_in_region=False)), regions, regions)
    def test_without_keys_in_region_the_key_region_must_still_be_permitted(
        self, policy: Policy, data: RegionFacts, key: RegionFacts
    ) -> None:
        assert decide_key_location(policy, data, key).allowed == _permitted(policy, key)


class TestExportProperties:
    @given(policies.map(lambda p: replace(p, cross_border_export=False)), regions)
    def test_an_undeclared_destination_is_refused_without_cross_border_export(
        self, policy: Policy, source: RegionFacts
    ) -> None:
        decision = decide_export(policy, source, None)
        assert not decision.allowed
        assert decision.rule == RULE_CROSS_BORDER_EXPORT

    @given(policies.map(lambda p: replace(p, cross_border_export=False)), regions, jurisdictions)
    def test_without_cross_border_export_data_stays_inside_the_boundary(
        self, policy: Policy, source: RegionFacts, destination: str
    ) -> None:
        inside = (
            destination == source.jurisdiction
            or destination in policy.allowed_jurisdictions
            or group_of(destination) in policy.allowed_groups
        )
        assert decide_export(policy, source, destination).allowed == inside

    @given(policies.map(lambda p: replace(p, cross_border_export=True)), regions)
    def test_cross_border_export_allows_any_destination(
        self, policy: Policy, source: RegionFacts
    ) -> None:
        assert decide_export(policy, source, None).allowed
        assert decide_export(policy, source, "JP").allowed

    @given(policies, regions)
    def test_export_within_the_source_jurisdiction_is_always_allowed(
        self, policy: Policy, source: RegionFacts
    ) -> None:
        assert decide_export(policy, source, source.jurisdiction.lower()).allowed


class TestGroups:
    def test_eu_member_states_belong_to_the_eu_group_and_others_to_themselves(self) -> None:
        assert group_of("SE") == "EU"
        assert group_of("de") == "EU"
        assert group_of("CA") == "CA"
        assert group_of("NO") == "NO"  # EEA, not EU
        assert len(EU_MEMBER_STATES) == 27


class TestExplanations:
    def test_a_refusal_names_the_region_its_jurisdiction_and_the_clause(self) -> None:
        policy = Policy(
            3,
            "Canada sovereign",
            "Protected B",
            frozenset({"CA"}),
            frozenset(),
            frozenset(),
            True,
            False,
            frozenset({"CA"}),
        )
        decision = decide_placement(policy, RegionFacts("se-north-1", "SE", "EU"))
        assert decision.rule == RULE_ALLOWED_JURISDICTIONS
        assert decision.explanation == (
            "region se-north-1 (SE, group EU) is outside policy 'Canada sovereign' v3, "
            "which permits only jurisdictions CA."
        )
