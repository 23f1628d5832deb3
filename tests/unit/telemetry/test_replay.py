"""Recorded samples played back re-timestamped, for demos."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from control_plane.telemetry.agent.fake_nvml import simulated_nvml
from control_plane.telemetry.agent.nvml import Sampler
from control_plane.telemetry.agent.replay import ReplaySource, write_recording

RECORDED_AT = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 5, 10, 0, 0, 400_000, tzinfo=UTC)


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    """Three passes over four simulated GPUs, ten seconds apart, recorded last year."""
    sampler = Sampler(simulated_nvml(4))
    path = tmp_path / "demo.jsonl"
    write_recording(
        path, (sampler.sample(RECORDED_AT + timedelta(seconds=10 * k)) for k in range(3))
    )
    return path


class TestReplay:
    def test_plays_the_passes_in_order_stamped_now_then_loops(self, recording: Path) -> None:
        lines = recording.read_text().splitlines()
        replay = ReplaySource(recording)

        passes = [replay.sample(NOW + timedelta(seconds=10 * k)) for k in range(4)]

        assert len(lines) == 12
        assert [len(p) for p in passes] == [4, 4, 4, 4]
        assert [p[0].at for p in passes] == [
            NOW.replace(microsecond=0) + timedelta(seconds=10 * k) for k in range(4)
        ]
        utils = [[s.sm_util_pct for s in p] for p in passes]
        assert utils[0] != utils[1]  # the recorded load moves...
        assert utils[3] == utils[0]  # ...and starts over after the last pass
        assert passes[1][3].processes == passes[0][3].processes

    def test_a_file_without_samples_is_refused(self, tmp_path: Path) -> None:
        empty = tmp_path / "empty.jsonl"
        empty.write_text("\n")

        with pytest.raises(ValueError, match="no samples"):
            ReplaySource(empty)

    def test_a_line_that_is_not_a_sample_names_its_line(self, recording: Path) -> None:
        recording.write_text(recording.read_text() + '{"at": "yesterday"}\n')

        with pytest.raises(ValueError, match=r"demo.jsonl:13"):
            ReplaySource(recording)
