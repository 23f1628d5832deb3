"""The port billing's budgets answer: may this organization (project) start new work?

The control plane asks it at placement (new tenancies and endpoints) and in the
inference gateway; billing implements it and the composition root wires it in. Until
it does, nothing is refused."""

from __future__ import annotations

from typing import Any, Protocol

from control_plane.errors import ProblemError

__all__ = ["AllowAll", "BudgetGate", "PaymentRequired", "require_budget"]


class PaymentRequired(ProblemError):
    status = 402
    slug = "budget-exhausted"
    title = "Budget exhausted"


class BudgetGate(Protocol):
    """Billing's answer to "may this organization spend more now?" (None: yes)."""

    async def refusal(self, org_id: str, project_id: str | None) -> str | None: ...


class AllowAll:
    async def refusal(self, org_id: str, project_id: str | None) -> str | None:
        return None


async def require_budget(state: Any, org_id: str, project_id: str | None) -> None:
    """Raise 402 ``budget-exhausted`` when a hard-stop budget is spent (``state``: the
    app's state, which holds the gate as ``budget_gate``)."""
    gate: BudgetGate = state.get("budget_gate") or AllowAll()
    refusal = await gate.refusal(org_id, project_id)
    if refusal is not None:
        raise PaymentRequired(detail=refusal)
