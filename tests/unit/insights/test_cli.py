"""``cpctl insights`` against a scripted API: the confirmation shows what applying changes,
refusals print the problem, the waste report reads as a table."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner, Result

from control_plane.cli.main import cli
from tests.fixtures.stub_api import StubApi

ORG = "/api/v1/orgs/org_1"
REC = f"{ORG}/recommendations/rec_1"


def cpctl(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, [*args, "--org", "org_1"], input=input)


def recommendation(**changes: Any) -> dict[str, Any]:
    return {
        "id": "rec_1", "org_id": "org_1", "rule": "underused_multi_gpu",
        "target_kind": "tenancy", "target_id": "ten_1", "target_name": "train",
        "region": "ca-qc-1", "title": "1 of 2 GPUs busy over 1 day: shrink to 1",
        "action": {"kind": "resize", "summary": "Resize to 1 x h100",
                   "params": {"gpus_per_node": 1, "node_count": 1, "gpu_model": "h100",
                              "gpu_milli": 1000}},
        "monthly_savings": "2920.00", "currency": "CAD", "energy_kwh_month": "67.2",
        "co2e_kg_month": "0.1", "confidence": 0.59, "evidence": {"busy_gpus": 1},
        "wasted_gpu_hours": 29.0, "state": "open", "snoozed_until": None, "note": "",
        "first_seen_at": "2026-12-01T00:00:00Z", "last_seen_at": "2026-12-01T00:00:00Z",
        "decided_at": None, "decided_by": None, **changes,
    }  # fmt: skip


def tenancy(**changes: Any) -> dict[str, Any]:
    return {
        "id": "ten_1", "org_id": "org_1", "project_id": None, "name": "train", "kind": "slurm",
        "region": "ca-qc-1", "gpu_model": "h100", "shape": None, "gpus_per_node": 2,
        "node_count": 1, "gpu_count": 2, "state": "active", "failure_reason": None,
        "driver": "sim", "simulated": True, "facts": {}, "image": None, "ssh_public_keys": [],
        "labels": {}, "ends_at": None, "idle_release_minutes": None,
        "allocations": [{"node_id": "node_1", "hostname": "n1", "gpu_indices": [0, 1],
                         "gpu_milli": 1000}],
        "created_by": "user:usr_1", "created_at": "2026-12-01T00:00:00Z",
        "state_changed_at": "2026-12-01T00:00:00Z", "activated_at": None,
        "released_at": None, "pending_resize": False, "last_error": None, **changes,
    }  # fmt: skip


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> StubApi:
    stub = StubApi(monkeypatch)
    stub.on("GET", REC, recommendation())
    stub.on("GET", f"{ORG}/tenancies/ten_1", tenancy())
    stub.on("POST", f"{REC}/apply", recommendation(state="applied", note="applied: Resize"))
    return stub


def posted(api: StubApi) -> list[str]:
    return [path for method, path, _ in api.calls if method == "POST"]


class TestApply:
    def test_shows_only_what_changes_and_stops_when_not_confirmed(self, api: StubApi) -> None:
        result = cpctl("insights", "apply", "rec_1", input="n\n")

        assert result.exit_code == 1
        assert result.stderr.splitlines()[:4] == [
            "1 of 2 GPUs busy over 1 day: shrink to 1",
            "  tenancy train (ten_1): Resize to 1 x h100",
            "  gpus per node: 2 -> 1",
            "  saves about 2920.00 CAD a month",
        ]
        assert "Apply this advice? [y/N]" in result.stderr
        assert posted(api) == []

    def test_applies_when_confirmed(self, api: StubApi) -> None:
        result = cpctl("insights", "apply", "rec_1", input="y\n")

        assert result.exit_code == 0, result.output
        assert posted(api) == [f"{REC}/apply"]
        assert "applied: Resize" in result.stdout

    def test_a_release_names_the_state_change(self, api: StubApi) -> None:
        action = {"kind": "release", "summary": "Release the tenancy", "params": {}}
        api.on("GET", REC, recommendation(action=action))

        result = cpctl("insights", "apply", "rec_1", "--yes")

        assert "  state: active -> released (its GPUs return to the pool)" in result.stderr
        assert posted(api) == [f"{REC}/apply"]

    def test_advice_already_decided_goes_to_the_server_and_its_refusal_is_shown(
        self, api: StubApi
    ) -> None:
        api.on("GET", REC, recommendation(state="applied"))
        problem = {"status": 409, "title": "Conflict",
                   "detail": "Only open advice can be applied; this one is applied."}  # fmt: skip
        api.on("POST", f"{REC}/apply", problem, 409)

        result = cpctl("insights", "apply", "rec_1")  # no prompt to answer

        assert result.exit_code == 1
        assert ("error: 409 Conflict: Only open advice can be applied; this one is applied."
                in result.stderr)  # fmt: skip

    def test_an_unknown_id_prints_the_problem(self, api: StubApi) -> None:
        result = cpctl("insights", "show", "rec_nope")

        assert result.exit_code == 1
        assert result.stderr.startswith("error: 404 Not found: No such thing.")


class TestOtherCommands:
    def test_list_asks_for_every_state_given(self, api: StubApi) -> None:
        api.on("GET", f"{ORG}/recommendations", [recommendation()])

        result = cpctl("insights", "list", "--state", "open", "--state", "snoozed")

        assert result.exit_code == 0, result.output
        assert "rec_1  train   Resize to 1 x h100  2920.00 CAD  59%" in result.stdout

    def test_dismiss_and_snooze_send_their_reason_and_days(self, api: StubApi) -> None:
        api.on("POST", f"{REC}/dismiss", recommendation(state="dismissed"))
        api.on("POST", f"{REC}/snooze", recommendation(state="snoozed"))

        cpctl("insights", "dismiss", "rec_1", "--reason", "demo next week")
        cpctl("insights", "snooze", "rec_1", "--days", "3")

        bodies = [body for method, _, body in api.calls if method == "POST"]
        assert bodies == [{"reason": "demo next week"}, {"days": 3}]

    def test_waste_is_a_table_with_money_idle_hours_savings_energy_and_co2e(
        self, api: StubApi
    ) -> None:
        api.on("GET", f"{ORG}/waste", {
            "org_id": "org_1", "since": "2026-11-01", "until": "2026-12-01",
            "open_recommendations": 2, "energy_kwh_month": "1234.56", "co2e_kg_month": "40.2",
            "currencies": [{"currency": "CAD", "wasted": "116.00", "gpu_hours": 58.0,
                            "idle_gpu_hours": 29.0, "open_savings_per_month": "2920.00",
                            "days": [["2026-11-30", 58.0, 29.0, "116.00"]]}],
        })  # fmt: skip

        result = cpctl("insights", "waste", "--days", "30")

        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == [
            "GPU waste from 2026-11-01 to 2026-12-01 (organization org_1)",
            "CURRENCY  WASTED  GPU-HOURS  IDLE GPU-HOURS  IDLE %  SAVINGS/MONTH",
            "CAD       116.00  58.0       29.0            50%     2920.00",
            "open recommendations: 2",
            "if applied, they save 1,234.6 kWh and 40.2 kg CO2e a month",
        ]
        assert api.calls[0][1] == f"{ORG}/waste"
