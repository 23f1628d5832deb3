"""``cpctl nodes agent-credential``, ``cpctl utilization``, ``cpctl fleet`` and ``cpctl
tenancies schedule`` against a scripted API (the served flow is in tests/e2e)."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner, Result

from control_plane.cli.client.telemetry import summarize
from control_plane.cli.main import cli
from control_plane.sdk.telemetry import RegionStranded, ShapeFit
from control_plane.telemetry.schemas import GpuSeries, HourPoint
from control_plane.tenancies import stranded
from tests.fixtures.stub_api import StubApi

CREDS = "/api/v1/nodes/node_1/agent-credentials"
SECRET = "cpn_0123456789ab_s3cr3t"
ISSUED = {"id": "ncr_1", "node_id": "node_1", "prefix": "cpn_0123456789ab",
          "credential": SECRET, "created_at": "2026-12-01T10:00:00Z"}  # fmt: skip
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def cpctl(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> StubApi:
    return StubApi(monkeypatch)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would leave a new file readable by everyone."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


class TestAgentCredentialIssue:
    def test_out_writes_the_credential_to_a_new_file_readable_only_by_its_owner(
        self, api: StubApi, tmp_path: Path, open_umask: None
    ) -> None:
        api.on("POST", CREDS, ISSUED, 201)
        out = tmp_path / "credential"

        result = cpctl("nodes", "agent-credential", "issue", "node_1", "--out", str(out))

        assert result.exit_code == 0, result.output
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert out.read_text() == SECRET + "\n"
        assert SECRET not in result.output
        assert f"written to {out} (mode 0600)" in result.stderr

    def test_out_refuses_to_overwrite_a_file_and_issues_nothing(
        self, api: StubApi, tmp_path: Path
    ) -> None:
        out = tmp_path / "credential"
        out.write_text("old\n")

        result = cpctl("nodes", "agent-credential", "issue", "node_1", "--out", str(out))

        assert result.exit_code == 2
        assert "exists" in result.stderr
        assert api.calls == []
        assert out.read_text() == "old\n"

    def test_without_out_prints_it_once_with_a_hint_to_keep_it_private(self, api: StubApi) -> None:
        api.on("POST", CREDS, ISSUED, 201)

        result = cpctl("nodes", "agent-credential", "issue", "node_1")

        assert result.exit_code == 0, result.output
        assert result.stdout == SECRET + "\n"
        assert "shown once" in result.stderr
        assert "mode 0600" in result.stderr
        assert "--credential-file" in result.stderr

    def test_json_output_without_out_carries_the_credential(self, api: StubApi) -> None:
        api.on("POST", CREDS, ISSUED, 201)

        result = cpctl("-o", "json", "nodes", "agent-credential", "issue", "node_1")

        assert msgspec.json.decode(result.stdout)["credential"] == SECRET

    def test_revoke_and_list(self, api: StubApi) -> None:
        read = {k: v for k, v in ISSUED.items() if k != "credential"}
        read |= {"created_by": "user:usr_1", "revoked_at": "2026-12-02T10:00:00Z",
                 "last_used_at": None}  # fmt: skip
        api.on("DELETE", f"{CREDS}/ncr_1", read)
        api.on("GET", CREDS, [read])

        revoked = cpctl("nodes", "agent-credential", "revoke", "node_1", "ncr_1")
        listed = cpctl("nodes", "agent-credential", "list", "node_1")

        assert revoked.stdout == "revoked ncr_1 (cpn_0123456789ab...) of node_1\n"
        assert "ncr_1  cpn_0123456789ab  user:usr_1" in listed.stdout
        assert SECRET not in listed.stdout


def point(hour: int, mean: float, p95: float, mem: int = 1024, wh: float = 500.0) -> HourPoint:
    return HourPoint(T0 + timedelta(hours=hour), mean, p95, mem, wh)


class TestUtilizationSummary:
    def test_folds_hours_into_mean_p95_peak_memory_and_energy(self) -> None:
        points = [point(h, mean=10.0 * (h % 2), p95=float(h)) for h in range(20)]
        points[7] = point(7, 10.0, 7.0, mem=40_000)

        summary = summarize(GpuSeries("gpu_1", "h100", "ten_1", 1000, points))

        assert summary.hours == 20
        assert summary.util_mean == 5.0
        assert summary.util_p95 == 18.0  # nearest rank: the 19th of 20 hourly p95s
        assert summary.mem_peak_mib == 40_000
        assert summary.energy_kwh == 10.0

    def test_a_gpu_without_hours_is_all_zero(self) -> None:
        summary = summarize(GpuSeries("gpu_1", "h100", "ten_1", 500, []))

        assert (summary.hours, summary.util_mean, summary.util_p95) == (0, 0.0, 0.0)

    def test_table_shows_one_row_per_gpu(self, api: StubApi) -> None:
        report = {"org_id": "org_1", "since": "2026-12-01T00:00:00Z",
                  "until": "2026-12-02T00:00:00Z", "idle_util_pct": 5.0, "gpu_hours": 2.0,
                  "idle_gpu_hours": 1.0, "util_mean": 40.0, "energy_kwh": 0.9, "days": [],
                  "gpus": [{"gpu_id": "gpu_1", "gpu_model": "h100", "tenancy_id": "ten_1",
                            "share_milli": 500,
                            "points": [["2026-12-01T00:00:00Z", 80.0, 95.0, 2048, 900.0]]}],
                  "truncated": True}  # fmt: skip
        api.on("GET", "/api/v1/orgs/org_1/utilization", report)

        result = cpctl("utilization", "--org", "org_1", "--tenancy", "ten_1",
                       "--since", "2026-12-01T00:00:00")  # fmt: skip

        assert result.exit_code == 0, result.output
        assert "2.0 GPU-hours, 1.0 idle (peak under 5%), mean utilization 40.0%" in result.stdout
        assert "gpu_1   h100       ten_1       50%    1      80.0    95.0   2.0" in result.stdout
        assert "narrow with --tenancy" in result.stderr
        [(_, _, _)] = api.calls


class TestStrandedTypes:
    def test_the_sdk_reads_every_field_the_server_sends(self) -> None:
        for sdk, server in ((RegionStranded, stranded.RegionStranded),
                            (ShapeFit, stranded.ShapeFit)):  # fmt: skip
            assert sdk.__struct_fields__ == tuple(f.name for f in dataclasses.fields(server))


class TestScheduleAndResize:
    TENANCY = "/api/v1/orgs/org_1/tenancies/ten_1"

    def test_off_sends_null(self, api: StubApi) -> None:
        cpctl("tenancies", "schedule", "ten_1", "--off", "--org", "org_1")

        assert api.calls[0] == ("POST", f"{self.TENANCY}/schedule",
                                {"idle_release_minutes": None})  # fmt: skip

    def test_minutes_are_sent(self, api: StubApi) -> None:
        cpctl("tenancies", "schedule", "ten_1", "--idle-release-minutes", "45", "--org", "org_1")

        assert api.calls[0][2] == {"idle_release_minutes": 45}

    @pytest.mark.parametrize("args", [(), ("--off", "--idle-release-minutes", "45")])
    def test_exactly_one_of_minutes_or_off(self, api: StubApi, args: tuple[str, ...]) -> None:
        result = cpctl("tenancies", "schedule", "ten_1", "--org", "org_1", *args)

        assert result.exit_code == 2
        assert "either --idle-release-minutes N or --off" in result.stderr
        assert api.calls == []

    def test_resize_to_another_model_and_share(self, api: StubApi) -> None:
        cpctl("tenancies", "resize", "ten_1", "--gpus-per-node", "1", "--gpu-model", "l40s",
              "--gpu-milli", "500", "--org", "org_1")  # fmt: skip

        sent = {"gpus_per_node": 1, "gpu_model": "l40s", "gpu_milli": 500}
        assert api.calls[0] == ("POST", f"{self.TENANCY}/resize", sent)
