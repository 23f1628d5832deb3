"""Residency rules with storage: versions, previews, and the checks other domains call.

Other domains ask :func:`check_placement` / :func:`check_export` before they place or
move anything; operator access reads :func:`current_policy` and :func:`region_facts` and
asks the engine directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import msgspec
import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit import store as ledger
from control_plane.clock import Clock
from control_plane.errors import Conflict, FieldError, InvalidInput, NotFound
from control_plane.http.pagination import Page, PageRequest, make_page
from control_plane.identity.authz import TenantScope
from control_plane.ids import new_id
from control_plane.inventory import service as inventory
from control_plane.inventory.capacity import region_currencies
from control_plane.settings import Settings
from control_plane.sovereignty.residency.engine import (
    Decision,
    Policy,
    RegionFacts,
    decide_export,
    decide_placement,
)
from control_plane.sovereignty.residency.errors import PolicyStrandsResources, ResidencyDenied
from control_plane.sovereignty.residency.models import ResidencyPolicyVersion
from control_plane.sovereignty.residency.resources import Resource, ResourceSources
from control_plane.sovereignty.residency.schemas import (
    DecisionRead,
    EvaluateRead,
    PolicyChange,
    PolicyFields,
    PolicyPreview,
    PolicyRead,
    ResourceAssessment,
    ResourceRead,
    TemplateRead,
)
from control_plane.sovereignty.residency.templates import (
    DEFAULT_TEMPLATE,
    TEMPLATES,
    policy_from_template,
)

__all__ = [
    "assess",
    "check_export",
    "check_placement",
    "current_policy",
    "evaluate",
    "get_policy",
    "list_templates",
    "list_versions",
    "preview",
    "region_facts",
    "seed_policy",
    "set_policy",
]

_CLAUSES = (
    "name",
    "classification",
    "unrestricted",
    "allowed_jurisdictions",
    "allowed_regions",
    "allowed_groups",
    "keys_in_region",
    "cross_border_export",
    "operator_jurisdictions",
)


# The contract other domains code against ------------------------------------------------


async def current_policy(db: AsyncSession, org_id: str) -> Policy:
    """The organization's newest policy version.

    An organization that never stored one gets the ``unrestricted`` template as version 0
    (documented in docs/residency.md): residency is opt-in per organization.
    """
    row = await _newest_version(db, org_id)
    return policy_from_template(DEFAULT_TEMPLATE, 0) if row is None else policy_of(row)


async def region_facts(db: AsyncSession, region_code: str) -> RegionFacts:
    """The region's jurisdiction and sovereignty group (404 problem for an unknown region)."""
    region = await inventory.get_region(db, region_code)
    return RegionFacts(
        code=region.code,
        jurisdiction=region.jurisdiction.upper(),
        sovereignty_group=region.sovereignty_group.upper(),
    )


async def allowed_regions(db: AsyncSession, org_id: str) -> list[str]:
    """Every region the organization's policy allows a placement in (nothing recorded: a
    caller that then places in one of them still calls :func:`check_placement`)."""
    policy = await current_policy(db, org_id)
    allowed = []
    for code in sorted(await region_currencies(db)):
        if decide_placement(policy, await region_facts(db, code)).allowed:
            allowed.append(code)
    return allowed


async def check_placement(
    db: AsyncSession,
    *,
    org_id: str,
    region_code: str,
    actor_kind: str,
    actor_id: str | None,
    subject: str,
    clock: Clock,
    settings: Settings,
    request_id: str | None = None,
) -> Decision:
    """Decide whether ``subject`` (``"kind:id"``, e.g. ``"tenancy:ten_…"``) may be placed in
    ``region_code``, record the decision in the ledger, and raise :class:`ResidencyDenied`
    on refusal.

    Call it before writing anything in the transaction: a refusal commits the transaction
    (so the refusal's ledger entry survives the failed request), and with it anything
    written before.
    """
    policy = await current_policy(db, org_id)
    decision = decide_placement(policy, await region_facts(db, region_code))
    await _record_decision(
        db,
        decision,
        policy,
        org_id=org_id,
        actor_kind=actor_kind,
        actor_id=actor_id,
        subject=subject,
        question={"check": "placement", "region": region_code},
        clock=clock,
        settings=settings,
        request_id=request_id,
    )
    return decision


async def check_export(
    db: AsyncSession,
    *,
    org_id: str,
    region_code: str,
    destination_jurisdiction: str | None,
    actor_kind: str,
    actor_id: str | None,
    subject: str,
    clock: Clock,
    settings: Settings,
    request_id: str | None = None,
) -> Decision:
    """As :func:`check_placement`, for data held in ``region_code`` leaving for
    ``destination_jurisdiction`` (None: out of the operator to an undeclared place)."""
    policy = await current_policy(db, org_id)
    source = await region_facts(db, region_code)
    decision = decide_export(policy, source, destination_jurisdiction)
    await _record_decision(
        db,
        decision,
        policy,
        org_id=org_id,
        actor_kind=actor_kind,
        actor_id=actor_id,
        subject=subject,
        question={
            "check": "export",
            "region": region_code,
            "destination": destination_jurisdiction,
        },
        clock=clock,
        settings=settings,
        request_id=request_id,
    )
    return decision


async def _record_decision(
    db: AsyncSession,
    decision: Decision,
    policy: Policy,
    *,
    org_id: str,
    actor_kind: str,
    actor_id: str | None,
    subject: str,
    question: dict[str, Any],
    clock: Clock,
    settings: Settings,
    request_id: str | None,
) -> None:
    target_type, _, target_id = subject.partition(":")
    await ledger.record(
        db,
        org_id=org_id,
        region=settings.region,
        actor_kind=actor_kind,
        actor_id=actor_id,
        action="residency.decision",
        target_type=target_type[:40] or None,
        target_id=target_id[:200] or None,
        request_id=request_id or _current_request_id(),
        source_address=None,
        outcome="allowed" if decision.allowed else "denied",
        decision_ref=decision.rule,
        payload={
            **question,
            "policy_version": policy.version,
            "explanation": decision.explanation,
        },
        at=clock.now(),
    )
    if not decision.allowed:
        raise ResidencyDenied(detail=decision.explanation, rule=decision.rule)


def _current_request_id() -> str | None:
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return request_id if isinstance(request_id, str) else None


# Reading policies --------------------------------------------------------------------------


def policy_of(row: ResidencyPolicyVersion) -> Policy:
    """The engine's view of a stored version."""
    return Policy(
        version=row.version,
        name=row.name,
        classification=row.classification,
        allowed_jurisdictions=frozenset(row.allowed_jurisdictions),
        allowed_regions=frozenset(row.allowed_regions),
        allowed_groups=frozenset(row.allowed_groups),
        keys_in_region=row.keys_in_region,
        cross_border_export=row.cross_border_export,
        operator_jurisdictions=frozenset(row.operator_jurisdictions),
        unrestricted=row.unrestricted,
    )


def policy_fields(policy: Policy) -> PolicyFields:
    return PolicyFields(
        name=policy.name,
        classification=policy.classification,
        unrestricted=policy.unrestricted,
        allowed_jurisdictions=sorted(policy.allowed_jurisdictions),
        allowed_regions=sorted(policy.allowed_regions),
        allowed_groups=sorted(policy.allowed_groups),
        keys_in_region=policy.keys_in_region,
        cross_border_export=policy.cross_border_export,
        operator_jurisdictions=sorted(policy.operator_jurisdictions),
    )


def _version_read(org_id: str, row: ResidencyPolicyVersion | None) -> PolicyRead:
    if row is None:
        return PolicyRead(
            org_id=org_id,
            version=0,
            policy=policy_fields(policy_from_template(DEFAULT_TEMPLATE, 0)),
            template=DEFAULT_TEMPLATE,
            changed_by_kind=None,
            changed_by_id=None,
            created_at=None,
            forced=False,
            flagged=[],
        )
    return PolicyRead(
        org_id=row.org_id,
        version=row.version,
        policy=policy_fields(policy_of(row)),
        template=row.template,
        changed_by_kind=row.changed_by_kind,
        changed_by_id=row.changed_by_id,
        created_at=row.created_at,
        forced=row.forced,
        flagged=[msgspec.convert(item, ResourceRead) for item in row.flagged],
    )


def list_templates() -> list[TemplateRead]:
    return [
        TemplateRead(slug=t.slug, description=t.description, policy=policy_fields(t.policy))
        for t in TEMPLATES.values()
    ]


async def get_policy(db: AsyncSession, scope: TenantScope, org_id: str) -> PolicyRead:
    """The current version (version 0, the unrestricted default, when none was stored)."""
    scope.require(org_id)
    return _version_read(org_id, await _newest_version(db, org_id))


async def list_versions(
    db: AsyncSession, scope: TenantScope, org_id: str, page: PageRequest
) -> Page[PolicyRead]:
    """Stored versions, newest first (the default version 0 is never stored)."""
    scope.require(org_id)
    query = select(ResidencyPolicyVersion).where(ResidencyPolicyVersion.org_id == org_id)
    if page.after is not None:
        query = query.where(ResidencyPolicyVersion.version < _cursor_version(page.after))
    query = query.order_by(ResidencyPolicyVersion.version.desc()).limit(page.limit + 1)
    rows = (await db.execute(query)).scalars().all()
    result = make_page(rows, page, key=lambda r: r.version)
    return Page(
        items=[_version_read(org_id, r) for r in result.items], next_cursor=result.next_cursor
    )


def _cursor_version(after: str) -> int:
    if not after.isdigit() or len(after) > 9:
        raise InvalidInput(
            detail="cursor is not one this API issued.",
            errors=[FieldError("query.cursor", "malformed cursor")],
        )
    return int(after)


async def flagged_versions(db: AsyncSession, org_id: str) -> dict[tuple[str, str], int]:
    """For each (kind, id) ever accepted outside a policy by force, the newest such version."""
    query = (
        select(ResidencyPolicyVersion.version, ResidencyPolicyVersion.flagged)
        .where(ResidencyPolicyVersion.org_id == org_id, ResidencyPolicyVersion.forced.is_(True))
        .order_by(ResidencyPolicyVersion.version)
    )
    found: dict[tuple[str, str], int] = {}
    for version, flagged in (await db.execute(query)).all():
        for item in flagged:
            found[(str(item["kind"]), str(item["id"]))] = int(version)
    return found


async def newest_version_row(db: AsyncSession, org_id: str) -> PolicyRead:
    """The current version as stored (or the default), without a permission check."""
    return _version_read(org_id, await _newest_version(db, org_id))


async def _newest_version(db: AsyncSession, org_id: str) -> ResidencyPolicyVersion | None:
    query = (
        select(ResidencyPolicyVersion)
        .where(ResidencyPolicyVersion.org_id == org_id)
        .order_by(ResidencyPolicyVersion.version.desc())
        .limit(1)
    )
    return (await db.execute(query)).scalar_one_or_none()


# Assessing resources --------------------------------------------------------------------------


async def assess(
    db: AsyncSession, policy: Policy, resources: Iterable[Resource]
) -> list[ResourceAssessment]:
    """What ``policy`` says about each resource's region (a vanished region is outside)."""
    facts: dict[str, RegionFacts | None] = {}
    assessed = []
    for resource in resources:
        if resource.region_code not in facts:
            facts[resource.region_code] = await _facts_or_none(db, resource.region_code)
        region = facts[resource.region_code]
        if region is None:
            decision = Decision(
                False,
                "residency.unknown_region",
                f"Region {resource.region_code} is not in the inventory; where it lies is unknown.",
            )
        else:
            decision = decide_placement(policy, region)
        assessed.append(
            ResourceAssessment(
                kind=resource.kind,
                id=resource.id,
                region_code=resource.region_code,
                jurisdiction=None if region is None else region.jurisdiction,
                description=resource.description,
                allowed=decision.allowed,
                rule=decision.rule,
                explanation=decision.explanation,
            )
        )
    return assessed


async def _facts_or_none(db: AsyncSession, region_code: str) -> RegionFacts | None:
    try:
        return await region_facts(db, region_code)
    except NotFound:
        return None


# Changing policies -----------------------------------------------------------------------------


async def proposed_policy(
    db: AsyncSession, org_id: str, change: PolicyChange
) -> tuple[Policy, str | None]:
    """The policy a change would store (numbered as the next version) and its template."""
    current = await current_policy(db, org_id)
    if change.template is not None:
        if change.template not in TEMPLATES:
            raise InvalidInput(
                detail=f"No residency template {change.template!r}.",
                errors=[FieldError("body.template", f"one of {', '.join(sorted(TEMPLATES))}")],
            )
        base = policy_from_template(change.template)
    else:
        base = current
    updates: dict[str, Any] = {}
    for clause in _CLAUSES:
        value = getattr(change, clause)
        if value is msgspec.UNSET:
            continue
        updates[clause] = frozenset(value) if isinstance(value, list) else value
    policy = replace(base, version=current.version + 1, **updates)
    await _check_clauses(db, policy)
    return policy, change.template


async def _check_clauses(db: AsyncSession, policy: Policy) -> None:
    errors = []
    if policy.unrestricted:
        for clause in ("allowed_jurisdictions", "allowed_regions", "allowed_groups"):
            if getattr(policy, clause):
                errors.append(FieldError(f"body.{clause}", "must be empty when unrestricted"))
        if policy.operator_jurisdictions:
            errors.append(
                FieldError("body.operator_jurisdictions", "must be empty when unrestricted")
            )
    for code in sorted(policy.allowed_regions):
        if await _facts_or_none(db, code) is None:
            errors.append(FieldError("body.allowed_regions", f"no region {code!r}"))
    if errors:
        raise InvalidInput(detail="The policy is not valid.", errors=errors)


async def preview(
    db: AsyncSession,
    scope: TenantScope,
    org_id: str,
    change: PolicyChange,
    sources: ResourceSources,
) -> PolicyPreview:
    """What saving ``change`` would do to the organization's resources; writes nothing."""
    scope.require(org_id)
    policy, _ = await proposed_policy(db, org_id, change)
    assessed = await assess(db, policy, await sources.collect(db, org_id))
    return PolicyPreview(
        policy=policy_fields(policy),
        resources=assessed,
        outside=sum(1 for a in assessed if not a.allowed),
    )


async def set_policy(
    db: AsyncSession,
    clock: Clock,
    scope: TenantScope,
    org_id: str,
    change: PolicyChange,
    sources: ResourceSources,
) -> PolicyRead:
    """Store ``change`` as the next version; refuse (409) if it strands resources, unless forced."""
    scope.require(org_id)
    policy, template = await proposed_policy(db, org_id, change)
    newest = await _newest_version(db, org_id)
    if newest is not None and _same(policy_of(newest), newest.template, policy, template):
        return _version_read(org_id, newest)  # nothing changes: PUT stays idempotent
    outside = [
        a for a in await assess(db, policy, await sources.collect(db, org_id)) if not a.allowed
    ]
    if outside and not change.force:
        raise PolicyStrandsResources(
            detail=(
                f"{len(outside)} existing resource(s) would fall outside the new policy; "
                "move them first, or save with force=true to record them as flagged."
            ),
            extra={"resources": [msgspec.to_builtins(a) for a in outside]},
        )
    principal = scope.principal
    row = _new_version(org_id, policy, template, (principal.kind, principal.id), outside, clock)
    db.add(row)
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict(detail="The policy was changed at the same time; reload and retry.") from exc
    return _version_read(org_id, row)


def _new_version(
    org_id: str,
    policy: Policy,
    template: str | None,
    changed_by: tuple[str, str | None],
    outside: list[ResourceAssessment],
    clock: Clock,
) -> ResidencyPolicyVersion:
    return ResidencyPolicyVersion(
        id=new_id("rpol"),
        org_id=org_id,
        version=policy.version,
        **{clause: _stored(getattr(policy, clause)) for clause in _CLAUSES},
        template=template,
        changed_by_kind=changed_by[0],
        changed_by_id=changed_by[1],
        forced=bool(outside),
        flagged=[
            {"kind": a.kind, "id": a.id, "region_code": a.region_code, "description": a.description}
            for a in outside
        ],
        created_at=clock.now(),
    )


async def seed_policy(db: AsyncSession, clock: Clock, org_id: str, change: PolicyChange) -> bool:
    """Store ``change`` as the organization's first version, by the system, unless it has one
    already (so seeding can run any number of times). Returns whether it stored one."""
    if await _newest_version(db, org_id) is not None:
        return False
    policy, template = await proposed_policy(db, org_id, change)
    db.add(_new_version(org_id, policy, template, ("system", "seed"), [], clock))
    await db.flush()
    return True


def _same(current: Policy, current_template: str | None, new: Policy, template: str | None) -> bool:
    """Whether storing ``new`` would change nothing (a retried PUT, a re-saved form)."""
    same_template = template is None or template == current_template
    return same_template and replace(new, version=current.version) == current


def _stored(value: Any) -> Any:
    return sorted(value) if isinstance(value, frozenset) else value


async def evaluate(
    db: AsyncSession, scope: TenantScope, org_id: str, region_code: str
) -> EvaluateRead:
    """Dry-run a placement under the current policy; records nothing."""
    scope.require(org_id)
    policy = await current_policy(db, org_id)
    try:
        region = await region_facts(db, region_code)
    except NotFound as exc:
        raise InvalidInput(
            detail=f"No region {region_code!r}.",
            errors=[FieldError("body.region_code", "no such region")],
        ) from exc
    decision = decide_placement(policy, region)
    return EvaluateRead(
        policy_version=policy.version,
        region_code=region.code,
        decision=DecisionRead(decision.allowed, decision.rule, decision.explanation),
    )
