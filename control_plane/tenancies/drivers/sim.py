"""``sim``: an in-process simulated data centre, the embedded default and the demo driver.

It stands in for real machines and is labelled ``simulated`` wherever a tenancy using it
shows. Its state lives in one small JSON file per tenancy under
``<state_dir>/<region>/`` so it outlives a control-plane restart, as a real data centre
would, and it counts every side effect it performs (machines built, wiped, torn down) so
tests can prove a crash and a retry never repeat one.

A machine takes ``boot_polls`` calls of :meth:`provision` after it is created before it
reports ready, like a node that is still installing its image.

Like the real drivers of each kind, simulated VMs can be powered on and off and give a
console link, and a simulated Kubernetes namespace issues a kubeconfig when it comes up
(and a new one on rotation, which invalidates the earlier ones); for other kinds these
abilities answer :class:`PermanentError` naming what the kind does not offer.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from control_plane.tenancies.drivers.base import (
    Allocation,
    ConsoleAccess,
    Credential,
    Health,
    Observed,
    PermanentError,
    PowerAction,
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
CREDENTIAL_LIFETIME = timedelta(hours=8)


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

    async def power(self, allocation: Allocation, action: PowerAction) -> StepResult:
        self._require(TenancyKind.VM, "power actions")
        return await asyncio.to_thread(self._power, allocation, action)

    async def console(self, allocation: Allocation, ttl_seconds: int) -> ConsoleAccess:
        self._require(TenancyKind.VM, "a console")
        token = secrets.token_urlsafe(24)
        host = allocation.nodes[0].hostname if allocation.nodes else "none"
        return ConsoleAccess(
            url=f"https://console.sim.invalid/{allocation.tenancy_id}?host={host}&token={token}",
            protocol="vnc",
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
        )

    async def issue_credentials(self, allocation: Allocation, *, rotate: bool) -> Credential:
        self._require(TenancyKind.KUBERNETES, "access credentials")
        return await asyncio.to_thread(self._issue, allocation, rotate)

    def tokens(self, region: str, tenancy_id: str) -> list[str]:
        """The kubeconfig tokens the simulated cluster accepts right now (for tests)."""
        file = self._file(region, tenancy_id)
        return list(json.loads(file.read_text()).get("tokens", [])) if file.exists() else []

    def _require(self, kind: TenancyKind, what: str) -> None:
        if self.kind != kind:
            raise PermanentError(f"a {self.kind.value} tenancy does not offer {what}")

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
            credential = self._credential(allocation, state) if self._issues_access() else None
            self._save(allocation, state)
            return StepResult(done=True, detail="simulated machine up",
                              facts=_facts(allocation, state), credential=credential)  # fmt: skip
        return StepResult(done=True, detail="simulated machine up", facts=_facts(allocation, state))

    def _issues_access(self) -> bool:
        return self.kind == TenancyKind.KUBERNETES

    def _power(self, allocation: Allocation, action: PowerAction) -> StepResult:
        state = self._load(allocation)
        if state is None or state["phase"] != "ready":
            raise PermanentError("the simulated VM is not up")
        was_on = state.get("power", "on") == "on"
        if action == PowerAction.STOP and was_on:
            state["power"] = "off"
            _count(state, "stopped")
        elif action == PowerAction.START and not was_on:
            state["power"] = "on"
            _count(state, "started")
        elif action == PowerAction.REBOOT:
            state["power"] = "on"
            _count(state, "rebooted")
        self._save(allocation, state)
        return StepResult(done=True, detail=f"simulated VM is {state['power']} ({action.value})",
                          facts={"power": state["power"]})  # fmt: skip

    def _issue(self, allocation: Allocation, rotate: bool) -> Credential:
        state = self._load(allocation)
        if state is None or state["phase"] != "ready":
            raise PermanentError("the simulated namespace is not up")
        if rotate:
            state["tokens"] = []  # a new service account: earlier tokens stop working
            _count(state, "rotated")
        credential = self._credential(allocation, state)
        self._save(allocation, state)
        return credential

    def _credential(self, allocation: Allocation, state: dict[str, Any]) -> Credential:
        token = secrets.token_urlsafe(32)
        state.setdefault("tokens", []).append(token)
        _count(state, "credentials")
        namespace = allocation.tenancy_id.replace("_", "-")
        server = f"https://k8s.{allocation.region}.sim.invalid"
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": namespace,
            "clusters": [{"name": allocation.region, "cluster": {"server": server}}],
            "users": [{"name": namespace, "user": {"token": token}}],
            "contexts": [{"name": namespace, "context": {
                "cluster": allocation.region, "user": namespace, "namespace": namespace}}],
        }  # fmt: skip
        return Credential(
            kind="kubeconfig",
            value=yaml.safe_dump(config, sort_keys=False).encode(),
            expires_at=datetime.now(UTC) + CREDENTIAL_LIFETIME,
        )

    def _release(self, allocation: Allocation) -> StepResult:
        state = self._load(allocation)
        if state is None or state["phase"] in ("released", "wiped"):
            return StepResult(done=True, detail="nothing running")
        state["phase"] = "released"
        state["busy"] = False
        state["tokens"] = []
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
