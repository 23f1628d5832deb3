"""Where samples come from: NVML, the fake NVML, or a recording (``--source``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

from control_plane.telemetry.agent.wire import Sample

SOURCE_HELP = "nvml (the GPUs), fake (4 simulated GPUs) or replay:FILE (a JSON Lines recording)"


class Source(Protocol):
    def sample(self, at: datetime) -> list[Sample]:
        """One pass over every GPU, stamped ``at``."""
        ...

    def close(self) -> None: ...


def open_source(spec: str) -> Source:
    """The source ``spec`` names (see :data:`SOURCE_HELP`); raises ValueError otherwise."""
    from control_plane.telemetry.agent.nvml import Sampler

    if spec == "nvml":
        from control_plane.telemetry.agent.nvml import load_nvml

        return Sampler(load_nvml())
    if spec == "fake":
        from control_plane.telemetry.agent.fake_nvml import simulated_nvml

        return Sampler(simulated_nvml())
    if spec.startswith("replay:"):
        from control_plane.telemetry.agent.replay import ReplaySource

        return ReplaySource(Path(spec.removeprefix("replay:")))
    raise ValueError(f"unknown source {spec!r}: use {SOURCE_HELP}")
