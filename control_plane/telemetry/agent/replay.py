"""Recorded samples played back as if live, for demos.

A recording is a JSON Lines file: one sample per line, in the wire format of
:class:`~control_plane.telemetry.agent.wire.Sample`. Consecutive lines form one sampling
pass until the timestamp changes or a GPU index comes round again. Each :meth:`sample`
returns the next pass stamped with the time asked for; after the last pass it starts over.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import msgspec

from control_plane.telemetry.agent.wire import Sample, to_second

_decoder = msgspec.json.Decoder(Sample)


class ReplaySource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._passes = read_recording(path)
        if not self._passes:
            raise ValueError(f"{path}: no samples to replay")
        self._next = 0

    def sample(self, at: datetime) -> list[Sample]:
        recorded = self._passes[self._next]
        self._next = (self._next + 1) % len(self._passes)
        at = to_second(at)
        return [msgspec.structs.replace(s, at=at) for s in recorded]

    def close(self) -> None:
        """Nothing to release: the file was read whole on start."""


def read_recording(path: Path) -> list[list[Sample]]:
    """The passes of a recording, in file order."""
    passes: list[list[Sample]] = []
    current: list[Sample] = []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            sample = _decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise ValueError(f"{path}:{number}: not a sample ({exc})") from exc
        if current and (sample.at != current[-1].at or sample.index <= current[-1].index):
            passes.append(current)
            current = []
        current.append(sample)
    if current:
        passes.append(current)
    return passes


def write_recording(path: Path, passes: Iterable[list[Sample]]) -> int:
    """Write ``passes`` as a recording; the number of samples written."""
    written = 0
    with path.open("wb") as out:
        for samples in passes:
            for sample in samples:
                out.write(msgspec.json.encode(sample) + b"\n")
                written += 1
    return written
