"""An in-process NVML: exactly the calls :mod:`.nvml` lists, for tests and GPU-less demos.

It mirrors pynvml rather than imitating it: the same call signatures, pynvml's own return
types (``c_nvmlUtilization_t``, ``c_nvmlMemory_t``, ``nvmlFriendlyObject`` processes), its
constants, and its ``NVMLError`` subclasses raised where the real library would
(``Uninitialized`` before ``nvmlInit``, ``InvalidArgument`` for a bad index, sensor or
clock, ``NotSupported`` for ECC on cards without it, ``NotFound`` for a process NVML cannot
name, ``GpuIsLost`` for a GPU that fell off the bus). Units are NVML's: bytes and
milliwatts.

Each GPU plays a script of readings; :meth:`FakeNvml.advance` moves every GPU to its next
reading (cycling). With ``auto_advance`` every ``nvmlDeviceGetCount`` call after the first
does it, which is once per sampling pass.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pynvml

GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class FakeProcess:
    pid: int
    name: str | None  # None: NVML cannot name it (nvmlSystemGetProcessName raises NotFound)
    used_bytes: int | None  # None: NVML reports no figure (usedGpuMemory is None)


@dataclass(frozen=True, slots=True)
class Reading:
    """What one GPU reports at one step of its script."""

    sm_util_pct: int = 0
    mem_util_pct: int = 0
    mem_used_bytes: int = 0
    power_mw: int = 60_000
    temp_c: int = 32
    sm_clock_mhz: int = 345
    mem_clock_mhz: int = 2619
    processes: tuple[FakeProcess, ...] = ()


@dataclass(slots=True)
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    mem_total_bytes: int = 80 * GIB
    ecc_supported: bool = True
    ecc_corrected: int = 0
    ecc_uncorrected: int = 0
    readings: list[Reading] = field(default_factory=lambda: [Reading()])
    lost: bool = False  # every call on its handle raises GpuIsLost
    step: int = 0

    @property
    def now(self) -> Reading:
        return self.readings[self.step % len(self.readings)]


@dataclass(frozen=True, slots=True)
class _Handle:
    index: int


def _error(code: int) -> Exception:
    """The pynvml exception class for ``code`` (e.g. ``NVMLError_NotSupported``)."""
    exc: Exception = pynvml.NVMLError(code)
    return exc


class FakeNvml:
    """Implements :class:`control_plane.telemetry.agent.nvml.Nvml` over scripted GPUs."""

    NVMLError: type[Exception] = pynvml.NVMLError
    NVML_ERROR_NOT_SUPPORTED: int = pynvml.NVML_ERROR_NOT_SUPPORTED
    NVML_TEMPERATURE_GPU: int = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM: int = pynvml.NVML_CLOCK_SM
    NVML_CLOCK_MEM: int = pynvml.NVML_CLOCK_MEM
    NVML_MEMORY_ERROR_TYPE_CORRECTED: int = pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED: int = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    NVML_VOLATILE_ECC: int = pynvml.NVML_VOLATILE_ECC

    def __init__(self, gpus: list[FakeGpu], *, auto_advance: bool = False) -> None:
        self.gpus = gpus
        self.auto_advance = auto_advance
        self.init_count = 0  # NVML counts nvmlInit calls; each nvmlShutdown undoes one
        self.calls: list[str] = []
        self._counted = False

    def advance(self) -> None:
        for gpu in self.gpus:
            gpu.step += 1

    # -- the NVML calls ------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        self._called("nvmlShutdown")
        self.init_count -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._called("nvmlDeviceGetCount")
        if self.auto_advance and self._counted:
            self.advance()
        self._counted = True
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._called("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    def nvmlDeviceGetUUID(self, handle: object) -> str:
        return self._gpu("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetName(self, handle: object) -> str:
        return self._gpu("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetUtilizationRates(self, handle: object) -> Any:
        now = self._gpu("nvmlDeviceGetUtilizationRates", handle).now
        return pynvml.c_nvmlUtilization_t(gpu=now.sm_util_pct, memory=now.mem_util_pct)

    def nvmlDeviceGetMemoryInfo(self, handle: object) -> Any:
        gpu = self._gpu("nvmlDeviceGetMemoryInfo", handle)
        used = gpu.now.mem_used_bytes
        return pynvml.c_nvmlMemory_t(
            total=gpu.mem_total_bytes, free=gpu.mem_total_bytes - used, used=used
        )

    def nvmlDeviceGetPowerUsage(self, handle: object) -> int:
        return self._gpu("nvmlDeviceGetPowerUsage", handle).now.power_mw

    def nvmlDeviceGetTemperature(self, handle: object, sensor: int) -> int:
        gpu = self._gpu("nvmlDeviceGetTemperature", handle)
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.now.temp_c

    def nvmlDeviceGetClockInfo(self, handle: object, type: int) -> int:
        gpu = self._gpu("nvmlDeviceGetClockInfo", handle)
        if type == pynvml.NVML_CLOCK_SM:
            return gpu.now.sm_clock_mhz
        if type == pynvml.NVML_CLOCK_MEM:
            return gpu.now.mem_clock_mhz
        raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetTotalEccErrors(self, handle: object, errorType: int, counterType: int) -> int:
        gpu = self._gpu("nvmlDeviceGetTotalEccErrors", handle)
        if counterType != pynvml.NVML_VOLATILE_ECC and counterType != pynvml.NVML_AGGREGATE_ECC:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if not gpu.ecc_supported:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if errorType == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED:
            return gpu.ecc_corrected
        if errorType == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED:
            return gpu.ecc_uncorrected
        raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: object) -> list[Any]:
        gpu = self._gpu("nvmlDeviceGetComputeRunningProcesses", handle)
        return [
            pynvml.nvmlFriendlyObject(
                {
                    "pid": p.pid,
                    "usedGpuMemory": p.used_bytes,
                    "gpuInstanceId": 0xFFFFFFFF,  # NVML's "no MIG instance"
                    "computeInstanceId": 0xFFFFFFFF,
                }
            )
            for p in gpu.now.processes
        ]

    def nvmlSystemGetProcessName(self, pid: int) -> str:
        self._called("nvmlSystemGetProcessName")
        for gpu in self.gpus:
            for p in gpu.now.processes:
                if p.pid == pid and p.name is not None:
                    return p.name
        raise _error(pynvml.NVML_ERROR_NOT_FOUND)

    # -- helpers -------------------------------------------------------------------------

    def _called(self, name: str) -> None:
        self.calls.append(name)
        if self.init_count <= 0:
            raise _error(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, name: str, handle: object) -> FakeGpu:
        self._called(name)
        if not isinstance(handle, _Handle) or handle.index >= len(self.gpus):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        gpu = self.gpus[handle.index]
        if gpu.lost:
            raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpu


def fake_uuid(n: int) -> str:
    """A stable, real-looking GPU UUID for fake GPU ``n``."""
    return f"GPU-{uuid.uuid5(uuid.NAMESPACE_URL, f'fake-gpu-{n}')}"


def simulated_nvml(count: int = 4) -> FakeNvml:
    """``count`` GPUs with varied, moving load (``cpctl agent run --source fake``)."""
    shapes = [_training, _idle, _inference, _consumer]
    gpus = [shapes[n % len(shapes)](n) for n in range(count)]
    return FakeNvml(gpus, auto_advance=True)


def _training(n: int) -> FakeGpu:
    trainer = FakeProcess(4100 + n, "python", 71 * GIB)
    readings = [
        Reading(96 - k % 5, 41 + k % 3, 72 * GIB, 640_000 + 4_000 * k, 71, 1980, 2619, (trainer,))
        for k in range(6)
    ]
    return FakeGpu(fake_uuid(n), readings=readings)


def _idle(n: int) -> FakeGpu:
    return FakeGpu(fake_uuid(n), readings=[Reading(0, 0, 512 << 20, 68_000, 31, 345, 405)])


def _inference(n: int) -> FakeGpu:
    server = FakeProcess(5200 + n, "tritonserver", 38 * GIB)
    load = [5, 12, 35, 60, 22, 8]
    readings = [
        Reading(u, u // 3, 39 * GIB, 90_000 + 4_500 * u, 40 + u // 4, 1755, 2619, (server,))
        for u in load
    ]
    return FakeGpu(fake_uuid(n), ecc_corrected=2, readings=readings)


def _consumer(n: int) -> FakeGpu:
    """A card without ECC, with a process NVML cannot name (another PID namespace)."""
    ghost = FakeProcess(6300 + n, None, None)
    return FakeGpu(
        fake_uuid(n),
        name="NVIDIA GeForce RTX 4090",
        mem_total_bytes=24 * GIB,
        ecc_supported=False,
        readings=[Reading(18, 6, 3 * GIB, 120_500, 48, 2520, 10501, (ghost,))],
    )
