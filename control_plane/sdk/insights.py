"""Right-sizing advice and the waste report through the SDK::

with Client(url, api_key) as client:
    client.insights.analyze()  # also runs in the background, hourly
    for rec in client.insights.list():
        print(rec.title, rec.action.summary, rec.monthly_savings, rec.currency)
    client.insights.apply(rec.id)  # the resize, release or schedule it advises
    report = client.insights.waste(days=30)
"""

from __future__ import annotations

from collections.abc import Sequence

from control_plane.insights.schemas import (
    AnalysisResult,
    Dismiss,
    RecommendationRead,
    Snooze,
    WasteReport,
)
from control_plane.sdk.resources import API, _OrgScoped, _seg

__all__ = ["STATES", "Insights"]

STATES = ("open", "applied", "dismissed", "snoozed", "resolved")
_Recommendations = list[RecommendationRead]


class Insights(_OrgScoped):
    """An organization's recommendations (biggest monthly savings first) and its waste."""

    def _path(self, org_id: str | None, tail: str = "") -> str:
        return f"{API}/orgs/{_seg(self._org(org_id))}/recommendations{tail}"

    def list(
        self, state: str | Sequence[str] = "open", *, org_id: str | None = None
    ) -> _Recommendations:
        """Recommendations in ``state`` (one, or several: ``("open", "snoozed")``)."""
        states = state if isinstance(state, str) else ",".join(state)
        return self._t.call("GET", self._path(org_id), _Recommendations, params={"state": states})

    def get(self, rec_id: str, *, org_id: str | None = None) -> RecommendationRead:
        return self._t.call("GET", self._path(org_id, f"/{_seg(rec_id)}"), RecommendationRead)

    def apply(self, rec_id: str, *, org_id: str | None = None) -> RecommendationRead:
        """Carry the advice out (resize, release, schedule or scale) through the same checks
        as doing it by hand; the tenancy then changes as the reconciler applies it."""
        return self._action(rec_id, "apply", None, org_id)

    def dismiss(
        self, rec_id: str, reason: str = "", *, org_id: str | None = None
    ) -> RecommendationRead:
        """Hide the advice for good (the analysis does not reopen it)."""
        return self._action(rec_id, "dismiss", Dismiss(reason=reason), org_id)

    def snooze(
        self, rec_id: str, days: int = 7, *, org_id: str | None = None
    ) -> RecommendationRead:
        """Hide the advice for ``days`` (1 to 90); it reopens then if it still holds."""
        return self._action(rec_id, "snooze", Snooze(days=days), org_id)

    def analyze(self, *, org_id: str | None = None) -> AnalysisResult:
        """Analyse the organization's GPUs now instead of waiting for the hourly pass."""
        return self._t.call("POST", self._path(org_id, "/analyze"), AnalysisResult)

    def waste(self, days: int = 30, *, org_id: str | None = None) -> WasteReport:
        """Idle GPU-hours of the last ``days`` and their cost at the organization's prices,
        per currency, with what the open advice would save a month."""
        path = f"{API}/orgs/{_seg(self._org(org_id))}/waste"
        return self._t.call("GET", path, WasteReport, params={"days": days})

    def _action(
        self, rec_id: str, action: str, body: Dismiss | Snooze | None, org_id: str | None
    ) -> RecommendationRead:
        path = self._path(org_id, f"/{_seg(rec_id)}/{action}")
        return self._t.call("POST", path, RecommendationRead, body=body, idempotency_key=True)
