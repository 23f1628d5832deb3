"""``redfish``: bare-metal tenancies on whole nodes, driven through each node's BMC with sushy.

A node's ``bmc_endpoint`` is the URL of its Redfish ComputerSystem, e.g.
``https://10.0.0.17/redfish/v1/Systems/1`` (scheme and authority name the BMC, the path the
system). Credentials come from the provider secret ``bmc/<hostname>``, a JSON object
``{"username": ..., "password": ...}``, revealed (and so recorded in the ledger) once per
step call that talks to the BMC. They are never logged, returned or written anywhere.

Steps, per node (all nodes of a tenancy move in parallel):

- provision: power off (if on), one-time PXE boot, power on, then wait until provisioned:
  the BMC reports the node on with the one-time override consumed (a BMC that ignores
  ``Once`` and keeps the override ``Continuous`` gets it cleared by the driver, or every
  reboot would reinstall the node). A real deployment would also wait for the installer's
  callback here; there is no installer behind an emulated BMC.
- release: power off (hard: the tenant's access ends now).
- clean: one-time PXE boot into the wipe image, power on, then power off, back to the pool.

Every call reads the node's state from the BMC before acting and does only what is
missing. Two node states look the same to a BMC, though (a node left on before the build
vs. a node on after it; a node off after release vs. after the wipe), so each node's
progress is also journaled in ``CP_REDFISH_STATE_DIR`` (one small JSON file per tenancy
and node, replaced atomically). A journal entry is written before the action it
announces; a power action the BMC has not applied yet is issued again only after
``CP_REDFISH_POWER_WAIT_SECONDS``. So a repeated call, or a retry after a crash, never
repeats a power or boot action.

sushy is synchronous: every BMC conversation runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import structlog

try:
    import sushy
    from requests import exceptions as http_errors
    from sushy import auth as sushy_auth
    from sushy import connector as sushy_connector
    from sushy import exceptions as sushy_errors
except ImportError as exc:  # the registry imports this module only when configured
    raise ImportError(
        "the redfish driver needs sushy: pip install 'sovereign-control-plane[redfish]'"
    ) from exc

from control_plane.clock import Clock
from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import (
    AllocatedNode,
    Allocation,
    DriverError,
    Health,
    Observed,
    PermanentError,
    RetryableError,
    StepResult,
    TenancyKind,
)
from control_plane.tenancies.drivers.registry import DriverContext, RevealSecret

__all__ = ["Phase", "RedfishDriver", "build"]

log = structlog.get_logger("control_plane.drivers.redfish")

_ENDPOINT = re.compile(r"^(?P<base>https?://[^/?#@\s]+)(?P<path>/redfish/v1/Systems/[^/?#\s]+)/?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_ROOT = "/redfish/v1/"
# HTTP statuses a BMC answers when busy: try again later rather than fail the tenancy.
_BUSY = frozenset({408, 409, 412, 423, 429})

T = TypeVar("T")


class Phase(StrEnum):
    """Where one node stands for one tenancy (the journal's record)."""

    NONE = ""  # this tenancy never touched the node
    PREPARING = "preparing"  # powering off before the build
    ARMING = "arming"  # setting the one-time PXE boot into the installer
    BOOTING = "booting"  # powered on into the installer, waiting for provisioned
    PROVISIONED = "provisioned"
    RELEASING = "releasing"  # powering off
    RELEASED = "released"  # off, tenant's access gone, disks not wiped yet
    WIPE_ARMING = "wipe_arming"  # setting the one-time PXE boot into the wipe image
    WIPE_BOOTING = "wipe_booting"  # powering on into the wipe image
    WIPE_STOPPING = "wipe_stopping"  # the wipe image took its boot: powering off
    CLEAN = "clean"  # wiped and off: the node can go back to the pool


_BUILDING = frozenset({Phase.PREPARING, Phase.ARMING, Phase.BOOTING, Phase.PROVISIONED})


@dataclass
class _Record:
    """One node's journal entry: its phase and the power action issued but not yet seen."""

    phase: Phase = Phase.NONE
    pending: str | None = None  # "On" or "Off"
    pending_at: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"phase": self.phase.value, "pending": self.pending, "pending_at": self.pending_at}


@dataclass(frozen=True)
class _Target:
    """A node's BMC as the driver talks to it."""

    node: AllocatedNode
    base_url: str
    system_path: str

    @classmethod
    def of(cls, node: AllocatedNode) -> _Target:
        match = _ENDPOINT.match(node.bmc_endpoint)
        if match is None:
            raise PermanentError(
                f"{node.hostname}: BMC endpoint must be a Redfish system URL "
                "(https://<bmc>/redfish/v1/Systems/<id>)"
            )
        return cls(node, match["base"], match["path"])


@dataclass(frozen=True)
class _Credentials:
    username: str
    password: str = field(repr=False)


@dataclass
class RedfishDriver:
    """Bare metal over Redfish. Build it with :func:`build`; ``settings`` carries the
    ``redfish_*`` options."""

    settings: Settings
    reveal_secret: RevealSecret
    clock: Clock = field(default_factory=Clock)
    name: str = "redfish"
    kind: TenancyKind = TenancyKind.BARE_METAL
    simulated: bool = False
    _seen_roots: set[str] = field(default_factory=set, init=False, repr=False)

    # --- the interface ----------------------------------------------------------------

    async def validate(self, allocation: Allocation) -> None:
        if allocation.kind is not TenancyKind.BARE_METAL:
            raise PermanentError(f"the redfish driver builds bare metal, not {allocation.kind}")
        if not allocation.nodes:
            raise PermanentError("a bare-metal tenancy needs at least one node")
        if allocation.image is not None and not _IMAGE.match(allocation.image):
            raise PermanentError(f"image {allocation.image!r} is not a valid image name")
        endpoints: set[str] = set()
        for node in allocation.nodes:
            if not node.whole_node or node.gpu_milli != 1000:
                raise PermanentError(f"{node.hostname}: bare metal takes whole nodes only")
            self._target(node)
            if node.bmc_endpoint in endpoints:
                raise PermanentError(f"{node.hostname}: BMC endpoint listed twice")
            endpoints.add(node.bmc_endpoint)

    async def provision(self, allocation: Allocation) -> StepResult:
        results = await self._each(allocation, "provision", self._provision_node)
        done = all(ok for ok, _ in results)
        if not done:
            return StepResult(done=False, detail=_waiting(allocation, results))
        return StepResult(done=True, detail="nodes provisioned", facts=_facts(allocation))

    async def release(self, allocation: Allocation) -> StepResult:
        results = await self._each(allocation, "release", self._release_node)
        if not all(ok for ok, _ in results):
            return StepResult(done=False, detail=_waiting(allocation, results))
        return StepResult(done=True, detail="nodes powered off")

    async def clean(self, allocation: Allocation) -> StepResult:
        results = await self._each(allocation, "clean", self._clean_node)
        if not all(ok for ok, _ in results):
            return StepResult(done=False, detail=_waiting(allocation, results))
        return StepResult(done=True, detail="nodes wiped and powered off")

    async def describe(self, allocation: Allocation) -> Observed:
        records = [self._load(allocation, node) for node in allocation.nodes]
        building = [
            (node, record)
            for node, record in zip(allocation.nodes, records, strict=True)
            if record.phase in _BUILDING
        ]
        if not building:
            return Observed(exists=False, ready=False, detail="no node built for this tenancy")
        not_ready = [
            f"{node.hostname}: {record.phase.value}"
            for node, record in building
            if record.phase is not Phase.PROVISIONED
        ]
        if not_ready or len(building) < len(allocation.nodes):
            return Observed(exists=True, ready=False, detail="; ".join(not_ready) or "partial")
        states = await self._each(allocation, "describe", self._power_of)
        off = [
            node.hostname for node, (on, _) in zip(allocation.nodes, states, strict=True) if not on
        ]
        if off:
            return Observed(exists=True, ready=False, detail=f"powered off: {', '.join(off)}")
        return Observed(exists=True, ready=True, detail="nodes on", facts=_facts(allocation))

    async def health(self) -> Health:
        roots = sorted({*map(_base_of, self.settings.redfish_health_urls), *self._seen_roots})
        if not roots:
            return Health(ok=True, detail="no BMC to probe yet (CP_REDFISH_HEALTH_URLS)")
        failures = [
            f"{root}: {error}"
            for root, error in zip(
                roots, await asyncio.gather(*(self._probe(r) for r in roots)), strict=True
            )
            if error
        ]
        if failures:
            return Health(ok=False, detail="; ".join(failures))
        return Health(ok=True, detail=f"{len(roots)} Redfish service root(s) answer")

    # --- one node, one call (run in a worker thread) ------------------------------------

    def _provision_node(self, bmc: _Bmc, record: _Record, save: _Save) -> tuple[bool, str]:
        if record.phase not in _BUILDING:
            record.phase, record.pending = Phase.PREPARING, None
            save()
        if record.phase is Phase.PREPARING:
            if not bmc.power(record, save, on=False):
                return False, "powering off before the build"
            record.phase = Phase.ARMING
            save()
        if record.phase is Phase.ARMING:
            if not bmc.pxe_armed():
                bmc.arm_pxe()
            record.phase = Phase.BOOTING
            save()
        if not bmc.power(record, save, on=True):
            return False, "powering on into the installer"
        if not bmc.finish_pxe_boot():
            return False, "waiting for the node to take its PXE boot"
        record.phase = Phase.PROVISIONED
        save()
        return True, "provisioned"

    def _release_node(self, bmc: _Bmc, record: _Record, save: _Save) -> tuple[bool, str]:
        if record.phase is not Phase.RELEASING:
            record.phase, record.pending = Phase.RELEASING, None
            save()
        if not bmc.power(record, save, on=False):
            return False, "powering off"
        record.phase = Phase.RELEASED
        save()
        return True, "powered off"

    def _clean_node(self, bmc: _Bmc, record: _Record, save: _Save) -> tuple[bool, str]:
        if record.phase in _BUILDING or record.phase is Phase.RELEASING:
            raise PermanentError(f"{bmc.hostname}: cannot wipe a node before it is released")
        if record.phase is Phase.RELEASED:
            record.phase, record.pending = Phase.WIPE_ARMING, None
            save()
        if record.phase is Phase.WIPE_ARMING:
            if not bmc.power(record, save, on=False):  # someone powered it on since release
                return False, "powering off before the wipe"
            if not bmc.pxe_armed():
                bmc.arm_pxe()
            record.phase = Phase.WIPE_BOOTING
            save()
        if record.phase is Phase.WIPE_BOOTING:
            if not bmc.power(record, save, on=True):
                return False, "powering on into the wipe image"
            if not bmc.finish_pxe_boot():
                return False, "waiting for the node to take its PXE boot into the wipe image"
            record.phase, record.pending = Phase.WIPE_STOPPING, None
            save()
        if not bmc.power(record, save, on=False):
            return False, "powering off after the wipe"
        record.phase = Phase.CLEAN
        save()
        return True, "wiped"

    def _power_of(self, bmc: _Bmc, record: _Record, save: _Save) -> tuple[bool, str]:
        on = bmc.is_on()
        return on, "on" if on else "off"

    # --- plumbing -------------------------------------------------------------------------

    async def _each(
        self,
        allocation: Allocation,
        step: str,
        work: Callable[[_Bmc, _Record, _Save], tuple[bool, str]],
    ) -> list[tuple[bool, str]]:
        """Run ``work`` for every node at once; raise the worst error any node hit."""
        outcomes = await asyncio.gather(
            *(self._on_node(allocation, node, step, work) for node in allocation.nodes),
            return_exceptions=True,
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            permanent = [e for e in errors if isinstance(e, PermanentError)]
            raise (permanent or errors)[0]
        return [o for o in outcomes if not isinstance(o, BaseException)]

    async def _on_node(
        self,
        allocation: Allocation,
        node: AllocatedNode,
        step: str,
        work: Callable[[_Bmc, _Record, _Save], tuple[bool, str]],
    ) -> tuple[bool, str]:
        target = self._target(node)  # checked again: credentials never go over plain http
        record = self._load(allocation, node)
        settled = _settled(step, record.phase)
        if settled:
            return True, settled  # no BMC conversation (nor secret) needed
        credentials = await self._credentials(allocation, node, step)

        def save() -> None:
            self._save(allocation, node, record)

        def run() -> tuple[bool, str]:
            with _Bmc.open(target, credentials, self.settings, self.clock) as bmc:
                return work(bmc, record, save)

        result = await asyncio.to_thread(run)
        self._seen_roots.add(target.base_url)
        return result

    async def _credentials(
        self, allocation: Allocation, node: AllocatedNode, step: str
    ) -> _Credentials:
        name = f"bmc/{node.hostname}"
        try:
            raw = await self.reveal_secret(name, f"redfish {step} of {allocation.tenancy_id}")
        except LookupError as exc:
            raise PermanentError(f"{node.hostname}: no BMC credentials (secret {name})") from exc
        try:
            data = json.loads(raw)
            return _Credentials(str(data["username"]), str(data["password"]))
        except (ValueError, TypeError, KeyError) as exc:
            # the secret's content stays out of the message
            raise PermanentError(
                f"{node.hostname}: secret {name} is not JSON with username and password"
            ) from exc

    async def _probe(self, base: str) -> str:
        """Empty when the BMC's Redfish service root answers (no credentials needed)."""

        def get() -> str:
            conn = _connector(base, self.settings)
            try:
                conn.get(_ROOT)
            except Exception as exc:  # any failure is the answer
                return _describe_error(exc)
            finally:
                conn.close()
            return ""

        return await asyncio.to_thread(get)

    def _target(self, node: AllocatedNode) -> _Target:
        target = _Target.of(node)
        if target.base_url.startswith("http:") and not self.settings.redfish_allow_http:
            raise PermanentError(
                f"{node.hostname}: plain-HTTP BMC refused (credentials would cross in "
                "clear); use https or set CP_REDFISH_ALLOW_HTTP for a lab"
            )
        return target

    def _file(self, allocation: Allocation, node: AllocatedNode) -> Path:
        root = self.settings.redfish_state_dir / allocation.region / allocation.tenancy_id
        return root / f"{node.node_id}.json"

    def _load(self, allocation: Allocation, node: AllocatedNode) -> _Record:
        file = self._file(allocation, node)
        if not file.exists():
            return _Record()
        data = json.loads(file.read_text())
        return _Record(Phase(data["phase"]), data.get("pending"), float(data.get("pending_at", 0)))

    def _save(self, allocation: Allocation, node: AllocatedNode, record: _Record) -> None:
        file = self._file(allocation, node)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record.as_json(), sort_keys=True))
        os.replace(tmp, file)


_Save = Callable[[], None]


def _settled(step: str, phase: Phase) -> str:
    """Why ``step`` has nothing left to do on a node in ``phase`` (empty: it has)."""
    if step == "provision" and phase is Phase.PROVISIONED:
        return "provisioned"
    if step == "release" and phase not in _BUILDING | {Phase.RELEASING}:
        return "nothing to release"
    if step == "clean" and phase in (Phase.NONE, Phase.CLEAN):
        return "nothing to wipe"
    return ""


class _Bmc:
    """One conversation with one node's BMC (synchronous: runs in a worker thread)."""

    def __init__(self, target: _Target, system: Any, conn: Any, clock: Clock, wait: float):
        self.target = target
        self.hostname = target.node.hostname
        self._system = system
        self._conn = conn
        self._clock = clock
        self._wait = wait

    @classmethod
    def open(cls, target: _Target, cred: _Credentials, settings: Settings, clock: Clock) -> _Bmc:
        conn = _connector(target.base_url, settings)
        try:
            root = _call(
                target,
                lambda: sushy.Sushy(
                    target.base_url,
                    auth=sushy_auth.BasicAuth(cred.username, cred.password),
                    connector=conn,
                    verify=_verify(settings),
                ),
            )
            system = _call(target, lambda: root.get_system(target.system_path))
        except BaseException:
            conn.close()
            raise
        return cls(target, system, conn, clock, settings.redfish_power_wait_seconds)

    def __enter__(self) -> _Bmc:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.close()

    def is_on(self) -> bool:
        return bool(self._system.power_state == sushy.PowerState.ON)

    def power(self, record: _Record, save: _Save, *, on: bool) -> bool:
        """True once the BMC reports the wanted power state; else ask for it, once."""
        want = "On" if on else "Off"
        state = self._system.power_state
        if state == (sushy.PowerState.ON if on else sushy.PowerState.OFF):
            if record.pending is not None:
                record.pending = None
                save()
            return True
        if state in (sushy.PowerState.POWERING_ON, sushy.PowerState.POWERING_OFF):
            return False
        now = self._clock.now().timestamp()
        if record.pending == want and now - record.pending_at < self._wait:
            return False  # asked already; the BMC has not applied it yet
        record.pending, record.pending_at = want, now
        save()  # announced before it is done: a crash here never doubles the action
        reset = sushy.ResetType.ON if on else sushy.ResetType.FORCE_OFF
        log.info("redfish power", node=self.hostname, action=reset.value)
        try:
            _call(self.target, lambda: self._system.reset_system(reset))
        except PermanentError:
            record.pending = None  # refused outright: nothing is in flight
            save()
            raise
        return False

    def pxe_armed(self) -> bool:
        boot = self._system.boot
        return bool(
            boot.target == sushy.BootSource.PXE
            and boot.enabled != sushy.BootSourceOverrideEnabled.DISABLED
        )

    def arm_pxe(self) -> None:
        log.info("redfish boot override", node=self.hostname, target="Pxe", enabled="Once")
        _call(
            self.target,
            lambda: self._system.set_system_boot_options(
                target=sushy.BootSource.PXE, enabled=sushy.BootSourceOverrideEnabled.ONCE
            ),
        )
        _call(self.target, self._system.refresh)

    def finish_pxe_boot(self) -> bool:
        """True once the node has taken its one-time PXE boot (the override is gone)."""
        if not self.pxe_armed():
            return True
        if self._system.boot.enabled == sushy.BootSourceOverrideEnabled.ONCE:
            return False  # the BMC clears it when the node boots from it
        self.clear_pxe()  # this BMC ignores "Once": clear it, or every reboot reinstalls
        return True

    def clear_pxe(self) -> None:
        """Drop a PXE override, if any, so the node boots from its disk."""
        if not self.pxe_armed():
            return
        allowed = self._system.get_allowed_system_boot_source_values()
        target = sushy.BootSource.NONE if sushy.BootSource.NONE in allowed else sushy.BootSource.HDD
        log.info("redfish boot override", node=self.hostname, target=target.value)
        _call(
            self.target,
            lambda: self._system.set_system_boot_options(
                target=target, enabled=sushy.BootSourceOverrideEnabled.DISABLED
            ),
        )
        _call(self.target, self._system.refresh)


def _connector(base_url: str, settings: Settings) -> Any:
    return sushy_connector.Connector(
        base_url,
        verify=_verify(settings),
        server_side_retries=1,  # the reconciler retries, with back-off
        default_request_timeout=settings.redfish_read_timeout_seconds,
        connect_timeout=settings.redfish_connect_timeout_seconds,
    )


def _base_of(url: str) -> str:
    """``https://bmc`` from ``https://bmc``, ``https://bmc/redfish/v1/`` or a system URL."""
    return url.split("/redfish/", 1)[0].rstrip("/")


def _verify(settings: Settings) -> bool | str:
    if not settings.redfish_verify_tls:
        return False
    return str(settings.redfish_ca_bundle) if settings.redfish_ca_bundle else True


def _call(target: _Target, op: Callable[[], T]) -> T:
    """Run one sushy operation, turning its errors into the driver's typed errors."""
    try:
        return op()
    except DriverError:
        raise
    except Exception as exc:
        raise _translate(target, exc) from exc


def _translate(target: _Target, exc: Exception) -> DriverError:
    host = target.node.hostname
    if isinstance(exc, sushy_errors.ConnectionError):
        if isinstance(exc.__context__, http_errors.SSLError):
            return PermanentError(
                f"{host}: the BMC's TLS certificate is not trusted (CP_REDFISH_CA_BUNDLE)"
            )
        return RetryableError(f"{host}: BMC unreachable or timed out")
    if isinstance(exc, sushy_errors.AccessError):
        return PermanentError(
            f"{host}: the BMC refused the credentials in bmc/{host} (HTTP {exc.status_code})"
        )
    if isinstance(exc, sushy_errors.ResourceNotFoundError):
        return PermanentError(f"{host}: no Redfish system at {target.system_path}")
    if isinstance(exc, sushy_errors.ServerSideError):
        return RetryableError(f"{host}: BMC error (HTTP {exc.status_code})")
    if isinstance(exc, sushy_errors.HTTPError):
        status = exc.status_code or 0
        if status in _BUSY:
            return RetryableError(f"{host}: BMC busy (HTTP {status})")
        return PermanentError(f"{host}: BMC rejected the request (HTTP {status})")
    if isinstance(exc, sushy_errors.InvalidParameterValueError | sushy_errors.MissingActionError):
        return PermanentError(f"{host}: the BMC cannot do this: {exc}")
    return RetryableError(f"{host}: {type(exc).__name__} talking to the BMC")


def _describe_error(exc: Exception) -> str:
    if isinstance(exc, sushy_errors.ConnectionError):
        return "unreachable"
    if isinstance(exc, sushy_errors.HTTPError):
        return f"HTTP {exc.status_code}"
    return type(exc).__name__


def _waiting(allocation: Allocation, results: Sequence[tuple[bool, str]]) -> str:
    return "; ".join(
        f"{node.hostname}: {detail}"
        for node, (ok, detail) in zip(allocation.nodes, results, strict=True)
        if not ok
    )


def _facts(allocation: Allocation) -> dict[str, str]:
    facts = {
        "access": "ssh",
        "hosts": ",".join(n.hostname for n in allocation.nodes),
        "nodes": str(len(allocation.nodes)),
        "gpus": str(allocation.gpu_count),
    }
    if allocation.image:
        facts["image"] = allocation.image
    return facts


def build(context: DriverContext) -> RedfishDriver:
    """The registry's entry point."""
    return RedfishDriver(settings=context.settings, reveal_secret=context.reveal_secret)
