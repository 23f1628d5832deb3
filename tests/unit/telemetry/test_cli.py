"""``cpctl agent`` as an operator uses it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from control_plane.cli.main import cli
from tests.unit.telemetry.conftest import SECRET
from tests.unit.telemetry.ingest_server import IngestServer

REPO = Path(__file__).resolve().parents[3]
WIRE_KEYS = {
    "at",
    "gpu_uuid",
    "index",
    "sm_util_pct",
    "mem_util_pct",
    "mem_used_mib",
    "mem_total_mib",
    "power_w",
    "temp_c",
    "sm_clock_mhz",
    "mem_clock_mhz",
    "ecc_corrected",
    "ecc_uncorrected",
    "processes",
}


class TestSampleCommand:
    def test_sample_fake_prints_one_pass_as_json(self) -> None:
        result = CliRunner().invoke(cli, ["agent", "sample", "--source", "fake"])

        assert result.exit_code == 0, result.output
        samples = json.loads(result.stdout)
        assert [s["index"] for s in samples] == [0, 1, 2, 3]
        assert all(set(s) == WIRE_KEYS for s in samples)
        assert samples[0]["at"].endswith("Z")
        assert samples[3]["ecc_corrected"] is None  # the simulated card without ECC

    def test_an_unusable_source_is_a_clear_error(self) -> None:
        result = CliRunner().invoke(cli, ["agent", "sample", "--source", "replay:/nonexistent"])

        assert result.exit_code == 1
        assert "cannot open source 'replay:/nonexistent'" in result.output

    def test_a_recording_replays_through_sample(self, tmp_path: Path) -> None:
        out = tmp_path / "rec.jsonl"
        runner = CliRunner()

        args = ["--source", "fake", "--passes", "2", "--interval", "0", "--out", str(out)]
        recorded = runner.invoke(cli, ["agent", "record", *args])
        replayed = runner.invoke(cli, ["agent", "sample", "--source", f"replay:{out}"])

        assert recorded.exit_code == 0, recorded.output
        assert "8 samples in 2 passes" in recorded.output
        first = json.loads(out.read_text().splitlines()[0])
        (again,) = [s for s in json.loads(replayed.stdout) if s["index"] == 0]
        assert {k: v for k, v in again.items() if k != "at"} == {
            k: v for k, v in first.items() if k != "at"
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
class TestRunCommand:
    def test_the_agent_process_ships_serves_metrics_and_stops_on_sigterm(
        self, ingest: IngestServer, tmp_path: Path
    ) -> None:
        port = free_port()
        args = ["--url", ingest.url, "--source", "fake", "--interval", "0.1"]
        args += ["--batch-seconds", "0.3", "--spool-dir", str(tmp_path / "spool")]
        args += ["--metrics-port", str(port), "--metrics-host", "127.0.0.1"]
        code = "from control_plane.cli.main import cli; cli()"
        env = {**os.environ, "PYTHONPATH": str(REPO), "CP_AGENT_CREDENTIAL": SECRET}
        agent = subprocess.Popen(
            [sys.executable, "-c", code, "agent", "run", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while len(ingest.accepted) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        finally:
            agent.send_signal(signal.SIGTERM)
            _, stderr = agent.communicate(timeout=30)

        assert agent.returncode == 0, stderr
        assert len(ingest.accepted) >= 2
        assert "cp_agent_gpu_power_watts{" in metrics
        assert "agent stopped" in stderr
        assert SECRET not in stderr
        assert list((tmp_path / "spool").glob("*.json")) == []  # shipped on the way out
