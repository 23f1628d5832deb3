"""The residency gate on operator access: the tenant's policy must allow the operator's home.

Asked when an operator requests access and again at every use of a grant, so a policy
tightened after an approval takes effect at the next use. A refusal is recorded in the
tenant's ledger and answered with a 403 ``residency-denied`` problem naming the clause that refused.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.identity.authz import ProviderScope
from control_plane.settings import Settings
from control_plane.sovereignty.access.ledger import record_operator_event
from control_plane.sovereignty.residency.engine import (
    RULE_OPERATOR_JURISDICTIONS,
    Decision,
    Policy,
    decide_operator_access,
)
from control_plane.sovereignty.residency.errors import ResidencyDenied
from control_plane.sovereignty.residency.service import current_policy


def operator_decision(policy: Policy, home_country: str | None) -> Decision:
    """The engine's decision; staff with no declared home are refused by any restriction.

    An unrestricted policy lets everyone through, so the engine can answer for them too.
    """
    if home_country:
        return decide_operator_access(policy, home_country)
    if policy.unrestricted:
        return decide_operator_access(policy, "(undeclared)")
    return Decision(
        False,
        RULE_OPERATOR_JURISDICTIONS,
        f"Operators with no declared home jurisdiction are refused: policy {policy.name!r} "
        f"v{policy.version} permits operators only from "
        f"{', '.join(sorted(policy.operator_jurisdictions)) or '(none)'}.",
    )


async def require_allowed_operator(
    db: AsyncSession,
    *,
    operator: ProviderScope,
    org_id: str,
    target_type: str,
    target_id: str,
    clock: Clock,
    settings: Settings,
) -> Decision:
    """The allowing decision, or record the refusal in the tenant's ledger and raise 403."""
    policy = await current_policy(db, org_id)
    decision = operator_decision(policy, operator.principal.home_country)
    if decision.allowed:
        return decision
    await record_operator_event(
        db,
        operator=operator,
        org_id=org_id,
        action="access.policy_refused",
        target_type=target_type,
        target_id=target_id,
        outcome="denied",
        decision_ref=decision.rule,
        payload={
            "policy_version": policy.version,
            "operator_jurisdiction": operator.principal.home_country,
            "explanation": decision.explanation,
        },
        clock=clock,
        settings=settings,
    )
    # Commits anyway: the refusal stays in the tenant's ledger.
    raise ResidencyDenied(detail=decision.explanation, rule=decision.rule)
