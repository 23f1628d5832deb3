"""The residency gate's answer for operators, and the CSV access report's shape."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from control_plane.sovereignty.access.lifecycle import (
    AccessState,
    ReasonCode,
    RequestKind,
    ResourceType,
)
from control_plane.sovereignty.access.policy import operator_decision
from control_plane.sovereignty.access.report import CSV_COLUMNS, report_csv
from control_plane.sovereignty.access.schemas import (
    AccessReport,
    AccessRequestDetail,
    AccessRequestRead,
    AccessUseRead,
)
from control_plane.sovereignty.residency.engine import RULE_OPERATOR_JURISDICTIONS
from control_plane.sovereignty.residency.templates import policy_from_template

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class TestOperatorDecision:
    def test_canadian_policy_admits_canadian_operators_only(self) -> None:
        policy = policy_from_template("canada-sovereign", 2)

        assert operator_decision(policy, "CA").allowed
        refused = operator_decision(policy, "SE")
        assert not refused.allowed
        assert refused.rule == RULE_OPERATOR_JURISDICTIONS
        assert "SE" in refused.explanation

    def test_staff_without_a_declared_home_are_refused_by_any_restriction(self) -> None:
        refused = operator_decision(policy_from_template("canada-sovereign", 1), None)

        assert not refused.allowed
        assert refused.rule == RULE_OPERATOR_JURISDICTIONS
        assert "no declared home jurisdiction" in refused.explanation

    def test_unrestricted_policy_admits_everyone(self) -> None:
        policy = policy_from_template("unrestricted")

        assert operator_decision(policy, None).allowed
        assert operator_decision(policy, "US").allowed


def _request(justification: str) -> AccessRequestRead:
    return AccessRequestRead(
        id="acr_1",
        org_id="org_1",
        kind=RequestKind.STANDARD,
        operator_id="usr_op",
        operator_email="ops@provider.example",
        operator_jurisdiction="CA",
        resource_type=ResourceType.SUPPORT_DATA,
        resource_id="org_1",
        reason_code=ReasonCode.CUSTOMER_INITIATED_SUPPORT,
        justification=justification,
        duration_minutes=60,
        state=AccessState.APPROVED,
        active=True,
        requested_at=T0,
        decide_by=T0,
        decided_at=T0,
        decided_by="user:usr_admin",
        decision_note=None,
        approved_at=T0,
        expires_at=T0,
        ended_at=None,
        ended_by=None,
        policy_rule="residency.unrestricted",
        review_required=False,
        review_verdict=None,
        review_comment=None,
        reviewed_at=None,
        reviewed_by=None,
    )


def _use(purpose: str, seq: int) -> AccessUseRead:
    return AccessUseRead(
        id=f"acu_{seq}",
        request_id="acr_1",
        operator_id="usr_op",
        resource_type=ResourceType.SUPPORT_DATA,
        resource_id="org_1",
        purpose=purpose,
        at=T0,
        ledger_chain="org_1/ca-qc-1",
        ledger_seq=seq,
    )


class TestReportCsv:
    def test_one_row_per_use_and_one_for_an_unused_request(self) -> None:
        used = AccessRequestDetail(_request("ticket 1"), [_use("look", 3), _use("again", 4)])
        unused = AccessRequestDetail(_request("ticket 2"), [])
        report = AccessReport(org_id="org_1", generated_at=T0, requests=[used, unused])

        rows = list(csv.DictReader(io.StringIO(report_csv(report))))

        assert [r["use_ledger_seq"] for r in rows] == ["3", "4", ""]
        assert [r["justification"] for r in rows] == ["ticket 1", "ticket 1", "ticket 2"]
        assert list(rows[0]) == list(CSV_COLUMNS)

    def test_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted(self) -> None:
        report = AccessReport(
            org_id="org_1",
            generated_at=T0,
            requests=[AccessRequestDetail(_request("=HYPERLINK(1)"), [])],
        )

        row = next(csv.DictReader(io.StringIO(report_csv(report))))

        assert row["justification"] == "'=HYPERLINK(1)"
