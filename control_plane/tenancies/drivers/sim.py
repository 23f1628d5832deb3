"""``sim``: an in-process simulated data centre, the embedded default and the demo driver.

It stands in for real machines and is labelled ``simulated`` wherever a tenancy using it
shows. Its state lives in one small JSON file per tenancy under
``<state_dir>/<region>/`` so it outlives a control-plane restart, as a real data centre
would, and it counts every side effect it performs (machines built, wiped, torn down) so
tests can prove a crash and a retry never repeat one.

A machine takes ``boot_polls`` calls of :meth:`provision` after it is created before it
reports ready, like a node that is still installing its image.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control_plane.tenancies.drivers.base import (
    Allocation,
    Health,
    Observed,
    PermanentError,
    StepResult,
    TenancyKind,
)

__all__ = ["IMAGES", "SimDriver"]

# The operating-system images the simulated data centre can install on bare metal.
IMAGES = frozenset({"ubuntu-22.04", "ubuntu-24.04", "debian-12", "rocky-9"})

_ACCESS = {
    TenancyKind.BARE_METAL: "ssh",
    TenancyKind.VM: "ssh",
    TenancyKind.KUBERNETES: "kubeconfig",
    TenancyKind.SLURM: "sbatch",
    TenancyKind.INFERENCE: "simulated inference (serves nothing)",
}


@dataclass
class SimDriver:
    kind: TenancyKind
    state_dir: Path
    boot_polls: int = 1
    name: str = "sim"
    simulated: bool = True

    async def validate(self, allocation: Allocation) -> None:
        if allocation.image is not None and allocation.image not in IMAGES:
            raise PermanentError(
                f"image {allocation.image!r} is not in the simulated catalog "
                f"({', '.join(sorted(IMAGES))})"
            )

    async def provision(self, allocation: Allocation) -> StepResult:
        return await asyncio.to_thread(self._provision, allocation)

    async def describe(self, allocation: Allocation) -> Observed:
        state = await asyncio.to_thread(self._load, allocation)
        if state is None or state["phase"] in ("released", "wiped"):
            return Observed(exists=False, ready=False, detail="no simulated machine")
        ready = state["phase"] == "ready"
        return Observed(
            exists=True,
            ready=ready,
            detail=f"simulated machine {state['phase']}",
            busy=bool(state.get("busy", False)),
            facts=_facts(allocation, state) if ready else {},
        )

    async def release(self, allocation: Allocation) -> StepResult:
        return await asyncio.to_thread(self._release, allocation)

    async def clean(self, allocation: Allocation) -> StepResult:
        return await asyncio.to_thread(self._clean, allocation)

    async def resize(self, allocation: Allocation, previous: Allocation) -> StepResult:
        return await asyncio.to_thread(self._resize, allocation)

    async def health(self) -> Health:
        return Health(ok=True, detail="simulated data centre")

    # --- the simulated machine --------------------------------------------------------

    def _provision(self, allocation: Allocation) -> StepResult:
        state = self._load(allocation)
        if state is None or state["phase"] in ("released", "wiped"):
            effects = (state or {}).get("effects", {})
            state = {
                "phase": "installing",
                "polls": 0,
                "gpus": allocation.gpu_count,
                "effects": effects,
            }
            _count(state, "created")
        if state["phase"] == "installing":
            state["polls"] += 1
            if state["polls"] < self.boot_polls:
                self._save(allocation, state)
                return StepResult(done=False, detail="simulated machine installing its image")
            state["phase"] = "ready"
            _count(state, "booted")
            self._save(allocation, state)
        return StepResult(done=True, detail="simulated machine up", facts=_facts(allocation, state))

    def _release(self, allocation: Allocation) -> StepResult:
        state = self._load(allocation)
        if state is None or state["phase"] in ("released", "wiped"):
            return StepResult(done=True, detail="nothing running")
        state["phase"] = "released"
        state["busy"] = False
        _count(state, "released")
        self._save(allocation, state)
        return StepResult(done=True, detail="simulated machine powered off")

    def _clean(self, allocation: Allocation) -> StepResult:
        state = self._load(allocation)
        if state is None or state["phase"] == "wiped":
            return StepResult(done=True, detail="already wiped")
        if state["phase"] != "released":
            raise PermanentError("cannot wipe a machine that is still running")
        state["phase"] = "wiped"
        _count(state, "wiped")
        self._save(allocation, state)
        return StepResult(done=True, detail="disks wiped")

    def _resize(self, allocation: Allocation) -> StepResult:
        state = self._load(allocation)
        if state is None or state["phase"] != "ready":
            return StepResult(done=False, detail="waiting for the machine to be up")
        if state.get("gpus") != allocation.gpu_count:
            state["gpus"] = allocation.gpu_count
            _count(state, "resized")
            self._save(allocation, state)
        return StepResult(
            done=True, detail=f"now {allocation.gpu_count} GPUs", facts=_facts(allocation, state)
        )

    # --- storage ----------------------------------------------------------------------

    def effects(self, region: str, tenancy_id: str) -> dict[str, int]:
        """How many times each side effect happened to a tenancy's machine (for tests)."""
        file = self._file(region, tenancy_id)
        return dict(json.loads(file.read_text())["effects"]) if file.exists() else {}

    def set_busy(self, region: str, tenancy_id: str, busy: bool) -> None:
        """Pretend the tenant's workload started or finished (demos and tests)."""
        file = self._file(region, tenancy_id)
        state = json.loads(file.read_text())
        state["busy"] = busy
        _write(file, state)

    def _file(self, region: str, tenancy_id: str) -> Path:
        return self.state_dir / region / self.kind.value / f"{tenancy_id}.json"

    def _load(self, allocation: Allocation) -> dict[str, Any] | None:
        file = self._file(allocation.region, allocation.tenancy_id)
        return json.loads(file.read_text()) if file.exists() else None

    def _save(self, allocation: Allocation, state: dict[str, Any]) -> None:
        _write(self._file(allocation.region, allocation.tenancy_id), state)


def _count(state: dict[str, Any], effect: str) -> None:
    effects = state.setdefault("effects", {})
    effects[effect] = effects.get(effect, 0) + 1


def _write(file: Path, state: dict[str, Any]) -> None:
    """Atomic replace, so a crash mid-write leaves the previous state."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, sort_keys=True))
    os.replace(tmp, file)


def _facts(allocation: Allocation, state: dict[str, Any]) -> dict[str, str]:
    hosts = ",".join(n.hostname for n in allocation.nodes)
    return {
        "access": _ACCESS[allocation.kind],
        "hosts": hosts,
        "gpus": str(state.get("gpus", allocation.gpu_count)),
        "simulated": "true",
    }
