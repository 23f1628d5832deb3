"""The templates behave as their names promise, whatever region or jurisdiction is asked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.sovereignty.residency.engine import (
    EU_MEMBER_STATES,
    RegionFacts,
    decide_export,
    decide_key_location,
    decide_operator_access,
    decide_placement,
    group_of,
)
from control_plane.sovereignty.residency.templates import (
    DEFAULT_TEMPLATE,
    TEMPLATES,
    policy_from_template,
)

JURISDICTIONS = sorted(EU_MEMBER_STATES | {"CA", "US", "GB", "NO", "CH", "JP", "AU", "IN"})

jurisdictions = st.sampled_from(JURISDICTIONS)
regions = st.builds(
    lambda code, j: RegionFacts(code=code, jurisdiction=j, sovereignty_group=group_of(j)),
    st.sampled_from(("r-1", "r-2", "r-3")),
    jurisdictions,
)


class TestCanadaSovereign:
    policy = policy_from_template("canada-sovereign", 1)

    @given(regions)
    def test_places_only_in_canada(self, region: RegionFacts) -> None:
        assert decide_placement(self.policy, region).allowed == (region.jurisdiction == "CA")

    @given(jurisdictions)
    def test_admits_only_operators_based_in_canada(self, home: str) -> None:
        assert decide_operator_access(self.policy, home).allowed == (home == "CA")

    @given(jurisdictions)
    def test_exports_never_leave_canada(self, destination: str) -> None:
        source = RegionFacts("ca-qc-1", "CA", "CA")
        assert decide_export(self.policy, source, destination).allowed == (destination == "CA")
        assert not decide_export(self.policy, source, None).allowed

    def test_keys_stay_in_the_data_region(self) -> None:
        montreal = RegionFacts("ca-qc-1", "CA", "CA")
        toronto = RegionFacts("ca-on-1", "CA", "CA")
        assert decide_key_location(self.policy, montreal, montreal).allowed
        assert not decide_key_location(self.policy, montreal, toronto).allowed

    def test_is_classified_protected_b(self) -> None:
        assert self.policy.classification == "Protected B"


class TestEuDataBoundary:
    policy = policy_from_template("eu-data-boundary", 1)

    @given(regions)
    def test_places_only_in_the_eu_sovereignty_group(self, region: RegionFacts) -> None:
        assert decide_placement(self.policy, region).allowed == (region.sovereignty_group == "EU")

    @given(jurisdictions)
    def test_admits_only_operators_based_in_eu_member_states(self, home: str) -> None:
        assert decide_operator_access(self.policy, home).allowed == (home in EU_MEMBER_STATES)

    @given(jurisdictions)
    def test_exports_stay_inside_the_eu(self, destination: str) -> None:
        source = RegionFacts("se-north-1", "SE", "EU")
        allowed = decide_export(self.policy, source, destination).allowed
        assert allowed == (destination in EU_MEMBER_STATES)

    def test_keeps_keys_in_the_data_region(self) -> None:
        assert self.policy.keys_in_region


class TestUnrestricted:
    policy = policy_from_template("unrestricted", 0)

    @given(regions, jurisdictions)
    def test_allows_every_region_operator_and_export(self, region: RegionFacts, j: str) -> None:
        assert decide_placement(self.policy, region).allowed
        assert decide_operator_access(self.policy, j).allowed
        assert decide_export(self.policy, region, j).allowed
        assert decide_export(self.policy, region, None).allowed

    def test_is_the_default_of_an_organization_without_a_policy(self) -> None:
        assert DEFAULT_TEMPLATE == "unrestricted"


class TestTemplateCatalogue:
    def test_has_the_three_named_templates(self) -> None:
        assert set(TEMPLATES) == {"canada-sovereign", "eu-data-boundary", "unrestricted"}

    @pytest.mark.parametrize("slug", sorted(TEMPLATES))
    def test_restricted_templates_list_no_clause_an_unrestricted_one_would_ignore(
        self, slug: str
    ) -> None:
        policy = TEMPLATES[slug].policy
        if policy.unrestricted:
            clauses = (
                policy.allowed_jurisdictions,
                policy.allowed_regions,
                policy.allowed_groups,
                policy.operator_jurisdictions,
            )
            assert all(not clause for clause in clauses)

    def test_a_template_policy_is_numbered_as_asked(self) -> None:
        assert policy_from_template("canada-sovereign", 7).version == 7

    def test_an_unknown_template_is_a_key_error(self) -> None:
        with pytest.raises(KeyError):
            policy_from_template("atlantis")
