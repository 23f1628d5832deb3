"""The residency decision engine: plain data in, a decision with its reason out.

Pure (no I/O, no clock) so every domain can ask it cheaply and it can be property-tested.
The semantics, documented for customers in docs/residency.md:

- **Placement.** ``unrestricted=True`` permits every region. Otherwise a region is
  permitted when *any* allow clause names it: its code is in ``allowed_regions``, its
  jurisdiction in ``allowed_jurisdictions`` or its sovereignty group in
  ``allowed_groups`` (a union, so "all of Canada plus se-north-1" is expressible). An
  empty clause permits nothing, so a restricted policy with all three clauses empty
  permits no region at all: emptiness never silently means "anywhere".
- **Operator access.** ``unrestricted=True`` permits operators of any jurisdiction;
  otherwise only jurisdictions in ``operator_jurisdictions`` (empty: none). The
  customer's approval of each access is still required on top (operator access domain).
- **Keys.** ``keys_in_region=True``: a key must live in the same region as the data it
  protects. Otherwise the key region only has to be a permitted placement region (keys
  are data under the policy too).
- **Export.** ``cross_border_export=True`` permits every export. Otherwise the
  destination must stay inside the policy's boundary: the source's own jurisdiction, an
  allowed jurisdiction, or a jurisdiction of an allowed sovereignty group. A ``None``
  destination means the data leaves the operator for a jurisdiction nobody declared
  (e.g. a download); it cannot be shown to stay inside, so it is refused unless
  cross-border export is permitted.

Jurisdictions and groups are compared upper-case; region codes as given (lower-case).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "GROUP_MEMBERS",
    "RULE_ALLOWED_GROUPS",
    "RULE_ALLOWED_JURISDICTIONS",
    "RULE_ALLOWED_REGIONS",
    "RULE_CROSS_BORDER_EXPORT",
    "RULE_KEYS_IN_REGION",
    "RULE_NO_ALLOWED_LOCATIONS",
    "RULE_OPERATOR_JURISDICTIONS",
    "RULE_UNRESTRICTED",
    "Decision",
    "Policy",
    "RegionFacts",
    "decide_export",
    "decide_key_location",
    "decide_operator_access",
    "decide_placement",
    "group_of",
]

RULE_UNRESTRICTED = "residency.unrestricted"
RULE_ALLOWED_REGIONS = "residency.allowed_regions"
RULE_ALLOWED_JURISDICTIONS = "residency.allowed_jurisdictions"
RULE_ALLOWED_GROUPS = "residency.allowed_groups"
RULE_NO_ALLOWED_LOCATIONS = "residency.no_allowed_locations"
RULE_OPERATOR_JURISDICTIONS = "residency.operator_jurisdictions"
RULE_KEYS_IN_REGION = "residency.keys_in_region"
RULE_CROSS_BORDER_EXPORT = "residency.cross_border_export"

# Sovereignty groups that span several jurisdictions. A jurisdiction not listed here is a
# group of its own (CA -> CA, US -> US), which matches the inventory's region rows.
EU_MEMBER_STATES = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip
GROUP_MEMBERS: Mapping[str, frozenset[str]] = {"EU": EU_MEMBER_STATES}


@dataclass(frozen=True)
class RegionFacts:
    """What residency needs to know about a region (read from inventory)."""

    code: str
    jurisdiction: str  # ISO 3166-1 alpha-2, e.g. "CA", "SE", "US"
    sovereignty_group: str  # e.g. "CA", "EU", "US"


@dataclass(frozen=True)
class Policy:
    """One version of an organization's residency policy (see the module docstring)."""

    version: int
    name: str
    classification: str
    allowed_jurisdictions: frozenset[str]
    allowed_regions: frozenset[str]
    allowed_groups: frozenset[str]
    keys_in_region: bool
    cross_border_export: bool
    operator_jurisdictions: frozenset[str]
    # True lifts the location clauses (placement anywhere, operators from anywhere); the
    # allow-sets are then empty. It does not lift keys_in_region or cross_border_export.
    unrestricted: bool = False


@dataclass(frozen=True)
class Decision:
    """Allowed or not, the stable id of the clause that decided, and a sentence why."""

    allowed: bool
    rule: str
    explanation: str


def group_of(jurisdiction: str) -> str:
    """The sovereignty group a bare jurisdiction belongs to (itself when not in a group)."""
    code = jurisdiction.upper()
    for group, members in GROUP_MEMBERS.items():
        if code in members:
            return group
    return code


def decide_placement(policy: Policy, region: RegionFacts) -> Decision:
    """May this organization's data or workload be placed in ``region``?"""
    named = _named(policy)
    where = f"region {region.code} ({region.jurisdiction}, group {region.sovereignty_group})"
    if policy.unrestricted:
        return Decision(True, RULE_UNRESTRICTED, f"{named} is unrestricted: {where} is permitted.")
    clauses = (
        (RULE_ALLOWED_REGIONS, "allowed regions", policy.allowed_regions, region.code),
        (
            RULE_ALLOWED_JURISDICTIONS,
            "allowed jurisdictions",
            policy.allowed_jurisdictions,
            region.jurisdiction.upper(),
        ),
        (
            RULE_ALLOWED_GROUPS,
            "allowed sovereignty groups",
            policy.allowed_groups,
            region.sovereignty_group.upper(),
        ),
    )
    for rule, label, allowed, value in clauses:
        if value in allowed:
            why = f"{where} is permitted by {named}: {label} {_list(allowed)}."
            return Decision(True, rule, why)
    why = f"{where} is outside {named}, which {_boundary(policy)}."
    return Decision(False, _denying_location_rule(policy), why)


def decide_export(
    policy: Policy, source: RegionFacts, destination_jurisdiction: str | None
) -> Decision:
    """May data held in ``source`` leave for ``destination_jurisdiction`` (None: undeclared)?"""
    named = _named(policy)
    origin = f"region {source.code} ({source.jurisdiction})"
    dest = None if destination_jurisdiction is None else destination_jurisdiction.upper()
    to = "an undeclared destination" if dest is None else dest
    if policy.cross_border_export:
        why = f"{named} permits cross-border export: export from {origin} to {to} is permitted."
        return Decision(True, RULE_CROSS_BORDER_EXPORT, why)
    if dest is None:
        why = (
            f"Export from {origin} to {to} is refused: {named} forbids cross-border export, "
            "and a destination outside the operator cannot be shown to stay in-jurisdiction."
        )
        return Decision(False, RULE_CROSS_BORDER_EXPORT, why)
    inside = (
        dest == source.jurisdiction.upper()
        or dest in policy.allowed_jurisdictions
        or group_of(dest) in policy.allowed_groups
    )
    if inside:
        why = f"Export from {origin} to {dest} stays inside the boundary of {named}."
        return Decision(True, RULE_CROSS_BORDER_EXPORT, why)
    why = f"Export from {origin} to {dest} is refused: {named} forbids cross-border export."
    return Decision(False, RULE_CROSS_BORDER_EXPORT, why)


def decide_operator_access(policy: Policy, operator_jurisdiction: str) -> Decision:
    """May a provider operator based in ``operator_jurisdiction`` touch this organization?"""
    named = _named(policy)
    home = operator_jurisdiction.upper()
    listed = _list(policy.operator_jurisdictions)
    if policy.unrestricted:
        why = (
            f"{named} is unrestricted: operators in {home} are permitted (approval still applies)."
        )
        return Decision(True, RULE_UNRESTRICTED, why)
    if home in policy.operator_jurisdictions:
        why = f"Operators in {home} are permitted by {named}: operator jurisdictions {listed}."
        return Decision(True, RULE_OPERATOR_JURISDICTIONS, why)
    why = f"Operators in {home} are refused: {named} permits operators only from {listed}."
    return Decision(False, RULE_OPERATOR_JURISDICTIONS, why)


def decide_key_location(
    policy: Policy, data_region: RegionFacts, key_region: RegionFacts
) -> Decision:
    """May the key protecting data in ``data_region`` be held in ``key_region``?"""
    named = _named(policy)
    if policy.keys_in_region:
        if key_region.code == data_region.code:
            why = (
                f"The key is held in {key_region.code}, the data's own region, as {named} requires."
            )
            return Decision(True, RULE_KEYS_IN_REGION, why)
        why = (
            f"A key held in {key_region.code} ({key_region.jurisdiction}) is refused: {named} "
            f"requires keys in the data's own region {data_region.code}."
        )
        return Decision(False, RULE_KEYS_IN_REGION, why)
    placement = decide_placement(policy, key_region)
    if placement.allowed:
        why = (
            f"{named} does not require keys in the data's region; "
            f"the key region {key_region.code} is permitted."
        )
        return Decision(True, placement.rule, why)
    return Decision(False, placement.rule, f"The key cannot be held there: {placement.explanation}")


def _named(policy: Policy) -> str:
    return f"policy {policy.name!r} v{policy.version}"


def _list(values: Iterable[str]) -> str:
    items = sorted(values)
    return ", ".join(items) if items else "(none)"


def _denying_location_rule(policy: Policy) -> str:
    """The clause a placement refusal is attributed to: the first one the policy uses."""
    if policy.allowed_jurisdictions:
        return RULE_ALLOWED_JURISDICTIONS
    if policy.allowed_groups:
        return RULE_ALLOWED_GROUPS
    if policy.allowed_regions:
        return RULE_ALLOWED_REGIONS
    return RULE_NO_ALLOWED_LOCATIONS


def _boundary(policy: Policy) -> str:
    clauses = []
    if policy.allowed_jurisdictions:
        clauses.append(f"jurisdictions {_list(policy.allowed_jurisdictions)}")
    if policy.allowed_groups:
        clauses.append(f"sovereignty groups {_list(policy.allowed_groups)}")
    if policy.allowed_regions:
        clauses.append(f"regions {_list(policy.allowed_regions)}")
    if not clauses:
        return "permits no region"
    return "permits only " + " or ".join(clauses)
