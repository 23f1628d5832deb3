"""Named starting points for a residency policy.

A template is copied into a new policy version (the version records which template it
came from); editing a template later never changes a stored version.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from control_plane.sovereignty.residency.engine import EU_MEMBER_STATES, Policy

__all__ = ["DEFAULT_TEMPLATE", "TEMPLATES", "Template", "policy_from_template"]


@dataclass(frozen=True)
class Template:
    """A template's slug, what it is for, and the policy it produces."""

    slug: str
    description: str
    policy: Policy


_NONE: frozenset[str] = frozenset()

TEMPLATES: dict[str, Template] = {
    t.slug: t
    for t in (
        Template(
            slug="canada-sovereign",
            description=(
                "Canadian government Protected B style: data and keys in Canadian regions only, "
                "no export out of Canada, provider staff based in Canada only."
            ),
            policy=Policy(
                version=0,
                name="Canada sovereign",
                classification="Protected B",
                allowed_jurisdictions=frozenset({"CA"}),
                allowed_regions=_NONE,
                allowed_groups=_NONE,
                keys_in_region=True,
                cross_border_export=False,
                operator_jurisdictions=frozenset({"CA"}),
            ),
        ),
        Template(
            slug="eu-data-boundary",
            description=(
                "EU data boundary: data and keys in regions of the EU sovereignty group, no "
                "export outside the EU, provider staff based in EU member states only."
            ),
            policy=Policy(
                version=0,
                name="EU data boundary",
                classification="EU personal data",
                allowed_jurisdictions=_NONE,
                allowed_regions=_NONE,
                allowed_groups=frozenset({"EU"}),
                keys_in_region=True,
                cross_border_export=False,
                operator_jurisdictions=EU_MEMBER_STATES,
            ),
        ),
        Template(
            slug="unrestricted",
            description=(
                "No residency restriction: any region, operators from any jurisdiction, "
                "export permitted. The default of an organization that never set a policy."
            ),
            policy=Policy(
                version=0,
                name="Unrestricted",
                classification="Unclassified",
                allowed_jurisdictions=_NONE,
                allowed_regions=_NONE,
                allowed_groups=_NONE,
                keys_in_region=False,
                cross_border_export=True,
                operator_jurisdictions=_NONE,
                unrestricted=True,
            ),
        ),
    )
}

DEFAULT_TEMPLATE = "unrestricted"


def policy_from_template(slug: str, version: int = 0) -> Policy:
    """The template's policy numbered ``version``; KeyError for an unknown slug."""
    return replace(TEMPLATES[slug].policy, version=version)
