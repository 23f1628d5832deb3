"""``slurm``: a tenancy is a Slurm account on the region's cluster.

Per tenancy, all named after the tenancy id (``ten_…``, already a valid Slurm and Linux
name), the driver keeps:

- a **QOS** with ``GrpTRES=gres/gpu=<N>`` (the tenancy's GPU count) and the flags
  ``DenyOnLimit`` (a job asking for more GPUs than the tenancy has is refused at
  submission) and ``RequiresReservation`` (a job must name the tenancy's reservation, so
  it cannot run on nodes outside the placement);
- an **account** association on the cluster whose only QOS (and default QOS) is that one,
  with the org id as its organization;
- a **user** association for the tenancy's own Slurm user (same name, default account the
  tenancy's), plus one per configured operator user;
- a **reservation** on the placed nodes (``Accounts=<account>``, ``OVERLAP`` so tenancies
  sharing a node each get one; Slurm 22.05 cannot reserve GRES, so the QOS holds the GPU
  count and the reservation holds the nodes).

Every step reads what exists (``sacctmgr show``, ``scontrol show reservation``) and does
only what is missing or differs, so a repeated call has no side effect. ``release`` stops
new submissions (``GrpSubmitJobs=0``), cancels the account's jobs and deletes the
reservation; ``clean`` deletes the users, the account and the QOS.

The Slurm client commands run as subprocesses with a time limit (they hang while
slurmctld is down). Unreachable daemons and timeouts raise :class:`RetryableError`;
unknown nodes, names Slurm cannot take and nodes held by a foreign reservation raise
:class:`PermanentError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from control_plane.settings import Settings
from control_plane.tenancies.drivers.base import (
    Allocation,
    DriverError,
    Health,
    Observed,
    PermanentError,
    RetryableError,
    StepResult,
    TenancyKind,
)
from control_plane.tenancies.drivers.registry import DriverContext

__all__ = ["SlurmConfig", "SlurmDriver", "build", "slurm_name"]

# A Slurm account/QOS/reservation name that is also a valid Linux user name (the tenancy's
# own user has the same name).
_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
QOS_FLAGS = frozenset({"DenyOnLimit", "RequiresReservation"})
RESERVATION_FLAGS = "IGNORE_JOBS,OVERLAP"
RESERVATION_DURATION = "3650-00:00:00"  # "UNLIMITED" means one year in Slurm 22.05
_T = TypeVar("_T")
_REGION_KEYS = frozenset({"conf", "bin_dir", "cluster"})

# Substrings of a failed command's output that mean "the peer is not answering".
_TRANSIENT = (
    "unable to contact",
    "connection refused",
    "timed out",
    "timeout",
    "zero bytes were transmitted",
    "persistent connection",
    "problem talking to the database",
    "communication connection failure",
    "resource temporarily unavailable",
    "munge",
    "in standby mode",
    "try again",
)
# ... and those that retrying cannot fix.
_PERMANENT = (
    "invalid node name",
    "overlaps with another reservation",
    "requested nodes are busy",
    "not found",
)


def slurm_name(allocation: Allocation) -> str:
    """The name of the tenancy's account, QOS, user and reservation."""
    name = allocation.tenancy_id.lower()
    if not _NAME.fullmatch(name):
        raise PermanentError(
            f"tenancy id {allocation.tenancy_id!r} cannot name a Slurm account "
            "(lower-case letters, digits, '_' or '-', at most 32 characters)"
        )
    return name


@dataclass(frozen=True, slots=True)
class SlurmConfig:
    """How to reach one region's cluster."""

    conf: Path | None = None
    bin_dir: Path | None = None
    cluster: str = ""
    timeout_seconds: float = 20.0
    admin_users: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, region: str) -> SlurmConfig:
        override = settings.slurm_regions.get(region, {})
        unknown = set(override) - _REGION_KEYS
        if unknown:
            raise ValueError(f"CP_SLURM_REGIONS[{region!r}]: unknown keys {sorted(unknown)}")
        conf = override.get("conf") or settings.slurm_conf
        bin_dir = override.get("bin_dir") or settings.slurm_bin_dir
        return cls(
            conf=Path(conf) if conf else None,
            bin_dir=Path(bin_dir) if bin_dir else None,
            cluster=override.get("cluster", settings.slurm_cluster),
            timeout_seconds=settings.slurm_command_timeout_seconds,
            admin_users=tuple(settings.slurm_admin_users),
        )


@dataclass(frozen=True, slots=True)
class _Output:
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return (self.stderr + self.stdout).strip()


@dataclass(frozen=True, slots=True)
class _Tenancy:
    """What Slurm holds for one tenancy right now."""

    qos: Mapping[str, str] | None  # GrpTRES, Flags
    account: Mapping[str, str] | None  # the account-level association
    users: frozenset[str]
    reservation: Mapping[str, str] | None

    @property
    def exists(self) -> bool:
        return bool(self.qos or self.account or self.users or self.reservation)


@dataclass
class SlurmDriver:
    config: SlurmConfig
    name: str = "slurm"
    kind: TenancyKind = TenancyKind.SLURM
    simulated: bool = False
    _cluster: str = field(default="", init=False)

    # --- the driver interface ---------------------------------------------------------

    async def validate(self, allocation: Allocation) -> None:
        slurm_name(allocation)
        if allocation.kind is not TenancyKind.SLURM:
            raise PermanentError(f"the slurm driver builds slurm tenancies, not {allocation.kind}")
        if not allocation.nodes or allocation.gpu_count < 1:
            raise PermanentError("a Slurm tenancy needs at least one GPU on one node")
        if any(node.gpu_milli != 1000 for node in allocation.nodes):
            raise PermanentError("Slurm tenancies take whole GPUs, not fractions")
        gpus = await self._node_gpus(_node_names(allocation))
        for node in allocation.nodes:
            have = gpus[node.hostname]
            if len(node.gpu_indices) > have or any(i >= have for i in node.gpu_indices):
                raise PermanentError(
                    f"Slurm node {node.hostname} has {have} GPUs; the placement asks for "
                    f"indices {list(node.gpu_indices)}"
                )

    async def provision(self, allocation: Allocation) -> StepResult:
        name = slurm_name(allocation)
        state = await self._observe(name)
        await self._ensure_qos(name, allocation.gpu_count, state.qos)
        await self._ensure_account(allocation, name, state.account)
        await self._ensure_users(name, state.users)
        if not await self._ensure_reservation(allocation, name, state.reservation):
            return StepResult(done=False, detail="waiting for slurmctld to learn the account")
        return StepResult(
            done=True,
            detail=f"Slurm account {name}: {allocation.gpu_count} GPUs on {_hosts(allocation)}",
            facts=await self._facts(allocation, name),
        )

    async def resize(self, allocation: Allocation, previous: Allocation) -> StepResult:
        """New GPU limit on the QOS, new nodes on the reservation; running jobs continue."""
        return await self.provision(allocation)

    async def describe(self, allocation: Allocation) -> Observed:
        name = slurm_name(allocation)
        state = await self._observe(name)
        jobs = await self._jobs(name)
        if not state.exists:
            return Observed(exists=False, ready=False, detail="no Slurm account", busy=bool(jobs))
        problems = await self._problems(allocation, name, state)
        busy = bool(jobs)
        detail = "; ".join(problems) or f"Slurm account {name} ready"
        if busy:
            detail += f"; {len(jobs)} job(s) queued or running"
        return Observed(
            exists=True,
            ready=not problems,
            detail=detail,
            busy=busy,
            facts=await self._facts(allocation, name) if not problems else {},
        )

    async def release(self, allocation: Allocation) -> StepResult:
        name = slurm_name(allocation)
        state = await self._observe(name)
        if state.account is not None and state.account["GrpSubmit"] != "0":
            cluster = await self._cluster_name()
            await self._sacctmgr(
                "modify", "account", "where", f"name={name}", f"cluster={cluster}",
                "set", "GrpSubmitJobs=0",
            )  # fmt: skip
        if await self._cancel_jobs(name):
            return StepResult(done=False, detail="cancelling the account's jobs")
        if state.reservation is not None and not await self._delete_reservation(name):
            return StepResult(done=False, detail="waiting for jobs to leave the reservation")
        return StepResult(done=True, detail=f"Slurm account {name} closed, jobs cancelled")

    async def clean(self, allocation: Allocation) -> StepResult:
        name = slurm_name(allocation)
        state = await self._observe(name)
        if await self._cancel_jobs(name):
            return StepResult(done=False, detail="cancelling the account's jobs")
        if state.reservation is not None and not await self._delete_reservation(name):
            return StepResult(done=False, detail="waiting for jobs to leave the reservation")
        if name in state.users:  # first: the account is its default account
            await self._sacctmgr_delete("user", "where", f"name={name}")
        # deleting the account takes the operators' associations with it
        if state.account is not None:
            await self._sacctmgr_delete("account", "where", f"name={name}")
        if state.qos is not None:
            await self._sacctmgr_delete("qos", "where", f"name={name}")
        return StepResult(done=True, detail=f"Slurm account, QOS and users of {name} removed")

    async def health(self) -> Health:
        problems = []
        try:
            ping = await self._run("scontrol", "ping")
            if ping.code != 0 or "UP" not in ping.stdout:
                problems.append(f"slurmctld: {ping.text or 'not answering'}")
        except DriverError as exc:
            problems.append(f"slurmctld: {exc}")
        try:
            await self._sacctmgr("show", "cluster", "format=cluster", reading=True)
        except DriverError as exc:
            problems.append(f"slurmdbd: {exc}")
        if problems:
            return Health(ok=False, detail="; ".join(problems))
        return Health(ok=True, detail="slurmctld and slurmdbd answer")

    # --- reading ----------------------------------------------------------------------

    async def _observe(self, name: str) -> _Tenancy:
        cluster = await self._cluster_name()
        # each sacctmgr call is a few slurmdbd round trips: ask both questions at once
        qos_rows, assoc_rows = await _both(
            self._sacctmgr(
                "show", "qos", "where", f"name={name}", "format=name,grptres,flags",
                reading=True,
            ),
            self._sacctmgr(
                "show", "assoc", "where", f"account={name}", f"cluster={cluster}",
                "format=account,user,qos,defaultqos,grpsubmit", reading=True,
            ),
        )  # fmt: skip
        qos = next(
            ({"GrpTRES": r[1], "Flags": r[2]} for r in qos_rows if r[0] == name and len(r) > 2),
            None,
        )
        account = None
        users = set()
        for row in assoc_rows:
            if len(row) < 5 or row[0] != name:
                continue
            if row[1]:
                users.add(row[1])
            else:
                account = {"QOS": row[2], "DefaultQOS": row[3], "GrpSubmit": row[4]}
        return _Tenancy(qos, account, frozenset(users), await self._reservation(name))

    async def _reservation(self, name: str) -> dict[str, str] | None:
        out = await self._run("scontrol", "-o", "show", "reservation", name)
        if out.code != 0:
            if "not found" in out.text.lower():
                return None
            raise _error("scontrol show reservation", out)
        return _key_values(out.stdout)

    async def _jobs(self, name: str) -> list[str]:
        out = await self._run("squeue", "-h", "-A", name, "-o", "%i|%T")
        if out.code != 0:
            raise _error("squeue", out)
        return [line for line in out.stdout.splitlines() if line.strip()]

    async def _node_gpus(self, hostnames: Iterable[str]) -> dict[str, int]:
        wanted = sorted(set(hostnames))
        out = await self._run("scontrol", "-o", "show", "node", ",".join(wanted))
        found: dict[str, int] = {}
        for line in out.stdout.splitlines():
            values = _key_values(line)
            if "NodeName" in values:
                found[values["NodeName"]] = _gpu_count(values.get("Gres", ""))
        missing = [host for host in wanted if host not in found]
        if out.code != 0 and "not found" not in out.text.lower():
            raise _error("scontrol show node", out)
        if missing:
            raise PermanentError(f"no Slurm node named {', '.join(missing)} on this cluster")
        return found

    async def _problems(self, allocation: Allocation, name: str, state: _Tenancy) -> list[str]:
        problems = []
        if state.qos is None:
            problems.append("QOS missing")
        elif state.qos["GrpTRES"] != f"gres/gpu={allocation.gpu_count}":
            problems.append(f"QOS limit is {state.qos['GrpTRES'] or 'unset'}")
        elif _flags(state.qos["Flags"]) != QOS_FLAGS:
            problems.append(f"QOS flags are {state.qos['Flags'] or 'unset'}")
        if state.account is None:
            problems.append("account missing")
        elif state.account["QOS"] != name or state.account["DefaultQOS"] != name:
            problems.append(f"account QOS is {state.account['QOS'] or 'unset'}")
        elif state.account["GrpSubmit"] == "0":
            problems.append("account closed to new jobs")
        missing_users = set(self._users(name)) - state.users
        if missing_users:
            problems.append(f"users missing: {', '.join(sorted(missing_users))}")
        if state.reservation is None:
            problems.append("reservation missing")
        elif not await self._same_nodes(state.reservation, allocation):
            problems.append(f"reservation on {state.reservation.get('Nodes')}")
        return problems

    async def _same_nodes(self, reservation: Mapping[str, str], allocation: Allocation) -> bool:
        wanted = _node_names(allocation)
        nodes = reservation.get("Nodes", "")
        if "[" in nodes:
            out = await self._run("scontrol", "show", "hostnames", nodes)
            if out.code != 0:
                raise _error("scontrol show hostnames", out)
            return sorted(out.stdout.split()) == wanted
        return sorted(nodes.split(",")) == wanted

    async def _facts(self, allocation: Allocation, name: str) -> dict[str, str]:
        return {
            "access": "sbatch",
            "cluster": await self._cluster_name(),
            "account": name,
            "user": name,
            "qos": name,
            "reservation": name,
            "hosts": _hosts(allocation),
            "gpus": str(allocation.gpu_count),
            "submit": f"sbatch -A {name} --reservation={name} --gres=gpu:<n> job.sh",
        }

    # --- writing ----------------------------------------------------------------------

    async def _ensure_qos(self, name: str, gpus: int, qos: Mapping[str, str] | None) -> None:
        limit = f"GrpTRES=gres/gpu={gpus}"
        flags = f"Flags={','.join(sorted(QOS_FLAGS))}"
        if qos is None:
            await self._sacctmgr("add", "qos", name, limit, flags, f"Description=tenancy {name}")
            return
        changes = []
        if qos["GrpTRES"] != f"gres/gpu={gpus}":
            changes.append(limit)
        if _flags(qos["Flags"]) != QOS_FLAGS:
            changes.append(flags)
        if changes:
            await self._sacctmgr("modify", "qos", "where", f"name={name}", "set", *changes)

    async def _ensure_account(
        self, allocation: Allocation, name: str, account: Mapping[str, str] | None
    ) -> None:
        cluster = await self._cluster_name()
        if account is None:
            org = re.sub(r"[^a-z0-9_-]", "_", allocation.org_id.lower())
            await self._sacctmgr(
                "add", "account", name, f"Cluster={cluster}", f"Organization={org}",
                f"Description=tenancy {name}", f"QOS={name}", f"DefaultQOS={name}",
            )  # fmt: skip
            return
        changes = []
        if account["QOS"] != name or account["DefaultQOS"] != name:
            changes += [f"QOS={name}", f"DefaultQOS={name}"]
        if account["GrpSubmit"] == "0":  # closed by an earlier release
            changes.append("GrpSubmitJobs=-1")
        if changes:
            await self._sacctmgr(
                "modify", "account", "where", f"name={name}", f"cluster={cluster}",
                "set", *changes,
            )  # fmt: skip

    async def _ensure_users(self, name: str, present: frozenset[str]) -> None:
        cluster = await self._cluster_name()
        for user in self._users(name):
            if user in present:
                continue
            extra = [f"DefaultAccount={name}"] if user == name else []
            await self._sacctmgr(
                "add", "user", user, f"Account={name}", f"Cluster={cluster}", *extra
            )

    async def _ensure_reservation(
        self, allocation: Allocation, name: str, reservation: Mapping[str, str] | None
    ) -> bool:
        """Create or move the reservation; False while slurmctld does not know the account."""
        nodes = _hosts(allocation)
        if reservation is None:
            args = [
                "create", "reservation", f"ReservationName={name}", f"Accounts={name}",
                f"Nodes={nodes}", "StartTime=now", f"Duration={RESERVATION_DURATION}",
                f"Flags={RESERVATION_FLAGS}",
            ]  # fmt: skip
        elif not await self._same_nodes(reservation, allocation):
            args = ["update", "reservation", f"ReservationName={name}", f"Nodes={nodes}"]
        else:
            return True
        for attempt in range(10):
            out = await self._run("scontrol", *args)
            if out.code == 0:
                return True
            # slurmdbd pushes a new account to slurmctld a moment after sacctmgr returns
            if "invalid account" not in out.text.lower():
                raise _error(f"scontrol {args[0]} reservation", out)
            await asyncio.sleep(0.1 * (attempt + 1))
        return False

    async def _cancel_jobs(self, name: str) -> bool:
        """Cancel every job of the account; True while some are still listed."""
        jobs = await self._jobs(name)
        if not jobs:
            return False
        out = await self._run("scancel", "-A", name)
        if out.code != 0:
            raise _error("scancel", out)
        return True

    async def _delete_reservation(self, name: str) -> bool:
        out = await self._run("scontrol", "delete", f"ReservationName={name}")
        if out.code == 0 or "invalid" in out.text.lower():  # already gone
            return True
        if "in use" in out.text.lower():
            return False
        raise _error("scontrol delete reservation", out)

    def _users(self, name: str) -> tuple[str, ...]:
        return (name, *(u for u in self.config.admin_users if u != name))

    # --- running commands -------------------------------------------------------------

    async def _cluster_name(self) -> str:
        if not self._cluster:
            self._cluster = self.config.cluster or await self._configured_cluster()
        return self._cluster

    async def _configured_cluster(self) -> str:
        out = await self._run("scontrol", "show", "config")
        if out.code != 0:
            raise _error("scontrol show config", out)
        match = re.search(r"^ClusterName\s*=\s*(\S+)", out.stdout, re.MULTILINE)
        if match is None:
            raise PermanentError("slurmctld reports no ClusterName")
        return match.group(1)

    async def _sacctmgr(self, *args: str, reading: bool = False) -> list[list[str]]:
        """Run ``sacctmgr`` (parsable, no header, no prompt); rows of a ``show``."""
        flags = ["-n", "-P"] if reading else ["-i"]
        out = await self._run("sacctmgr", *flags, *args)
        if out.code != 0:
            raise _error(f"sacctmgr {' '.join(args[:2])}", out)
        return [line.split("|") for line in out.stdout.splitlines() if line.strip()]

    async def _sacctmgr_delete(self, *args: str) -> None:
        out = await self._run("sacctmgr", "-i", "delete", *args)
        if out.code != 0 and "nothing deleted" not in out.text.lower():
            raise _error(f"sacctmgr delete {args[0]}", out)

    async def _run(self, tool: str, *args: str) -> _Output:
        program = str(self.config.bin_dir / tool) if self.config.bin_dir else tool
        try:
            process = await asyncio.create_subprocess_exec(
                program,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env(),
                start_new_session=True,
            )
        except OSError as exc:
            raise RetryableError(f"cannot run {program}: {exc}") from exc
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(), self.config.timeout_seconds
            )
        except TimeoutError:
            await _kill(process)
            raise RetryableError(
                f"{tool} {' '.join(args[:3])} timed out after {self.config.timeout_seconds:g}s"
                " (slurmctld or slurmdbd not answering)"
            ) from None
        except BaseException:
            await _kill(process)
            raise
        code = process.returncode if process.returncode is not None else -1
        return _Output(code, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    def _env(self) -> dict[str, str]:
        # SLURM_* of the control plane's own environment (a job id, a partition) must not
        # leak into the commands.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env["LC_ALL"] = "C"
        if self.config.conf is not None:
            env["SLURM_CONF"] = str(self.config.conf)
        return env


async def _both(first: Awaitable[_T], second: Awaitable[_T]) -> tuple[_T, _T]:
    """Await two reads together; both finish (or time out) before an error is raised."""
    one, two = await asyncio.gather(first, second, return_exceptions=True)
    if isinstance(one, BaseException):
        raise one
    if isinstance(two, BaseException):
        raise two
    return one, two


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _error(what: str, out: _Output) -> DriverError:
    text = out.text or f"exit code {out.code}"
    message = f"{what} failed: {text[-500:]}"
    lowered = text.lower()
    if any(marker in lowered for marker in _TRANSIENT):
        return RetryableError(message)
    if any(marker in lowered for marker in _PERMANENT):
        return PermanentError(message)
    return RetryableError(message)


def _key_values(line: str) -> dict[str, str]:
    """Parse ``scontrol -o`` output (``Key=value`` words; values may hold spaces)."""
    values: dict[str, str] = {}
    key = ""
    for word in line.split():
        name, sep, value = word.partition("=")
        if sep and name.replace("_", "").isalnum():
            key = name
            values[key] = value
        elif key:
            values[key] += f" {word}"
    return values


def _gpu_count(gres: str) -> int:
    """``gpu:h100:8(S:0-1),nic:2`` -> 8."""
    total = 0
    for item in re.sub(r"\([^)]*\)", "", gres).split(","):
        parts = item.split(":")
        if parts[0] == "gpu" and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def _flags(text: str) -> frozenset[str]:
    return frozenset(flag for flag in text.split(",") if flag)


def _node_names(allocation: Allocation) -> list[str]:
    """The placed nodes' Slurm names (their inventory host names), sorted, checked so
    that none can widen a Slurm node list (``gpu[01-99]``, ``a,b``)."""
    names = sorted({node.hostname for node in allocation.nodes})
    for name in names:
        if not _NODE.fullmatch(name):
            raise PermanentError(f"host name {name!r} cannot name a Slurm node")
    return names


def _hosts(allocation: Allocation) -> str:
    return ",".join(_node_names(allocation))


def build(context: DriverContext) -> SlurmDriver:
    return SlurmDriver(SlurmConfig.from_settings(context.settings, context.region))
