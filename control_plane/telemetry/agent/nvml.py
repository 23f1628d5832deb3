"""NVML behind a small interface, and the sampler that turns one NVML pass into samples.

The agent uses exactly these pynvml (``nvidia-ml-py``) names, and nothing else:

- ``nvmlInit()``, ``nvmlShutdown()``
- ``nvmlDeviceGetCount()`` -> int
- ``nvmlDeviceGetHandleByIndex(index)`` -> opaque handle
- ``nvmlDeviceGetUUID(h)`` -> str (``"GPU-..."``); ``nvmlDeviceGetName(h)`` -> str
- ``nvmlDeviceGetUtilizationRates(h)`` -> ``.gpu``, ``.memory`` (percent over the last
  sample period)
- ``nvmlDeviceGetMemoryInfo(h)`` -> ``.total``, ``.free``, ``.used`` (bytes)
- ``nvmlDeviceGetPowerUsage(h)`` -> int (milliwatts)
- ``nvmlDeviceGetTemperature(h, NVML_TEMPERATURE_GPU)`` -> int (degrees C)
- ``nvmlDeviceGetClockInfo(h, NVML_CLOCK_SM | NVML_CLOCK_MEM)`` -> int (MHz)
- ``nvmlDeviceGetTotalEccErrors(h, NVML_MEMORY_ERROR_TYPE_CORRECTED | _UNCORRECTED,
  NVML_VOLATILE_ECC)`` -> int; raises ``NVMLError`` (``NVML_ERROR_NOT_SUPPORTED``) on
  cards without ECC: reported as null
- ``nvmlDeviceGetComputeRunningProcesses(h)`` -> list of ``.pid``, ``.usedGpuMemory``
  (bytes, or None when unknown)
- ``nvmlSystemGetProcessName(pid)`` -> str
- ``NVMLError`` (its ``.value`` is the NVML return code) and the constants named above.

:class:`Nvml` spells this out for the type checker; :mod:`.fake_nvml` implements the same
calls in process for tests and for trying the agent without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, cast

import structlog

from control_plane.telemetry.agent.wire import MIB, Process, Sample, to_second

log = structlog.get_logger("control_plane.telemetry.agent")

UNKNOWN_PROCESS = "[unknown]"  # NVML could not name it (exited, or another PID namespace)


class Utilization(Protocol):
    gpu: int
    memory: int


class MemoryInfo(Protocol):
    total: int
    free: int
    used: int


class ProcessInfo(Protocol):
    pid: int
    usedGpuMemory: int | None


class Nvml(Protocol):
    """The part of pynvml the agent calls (the module itself satisfies it)."""

    NVMLError: type[Exception]
    NVML_ERROR_NOT_SUPPORTED: int
    NVML_TEMPERATURE_GPU: int
    NVML_CLOCK_SM: int
    NVML_CLOCK_MEM: int
    NVML_MEMORY_ERROR_TYPE_CORRECTED: int
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED: int
    NVML_VOLATILE_ECC: int

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> object: ...
    def nvmlDeviceGetUUID(self, handle: object) -> str: ...
    def nvmlDeviceGetName(self, handle: object) -> str: ...
    def nvmlDeviceGetUtilizationRates(self, handle: object) -> Utilization: ...
    def nvmlDeviceGetMemoryInfo(self, handle: object) -> MemoryInfo: ...
    def nvmlDeviceGetPowerUsage(self, handle: object) -> int: ...
    def nvmlDeviceGetTemperature(self, handle: object, sensor: int) -> int: ...
    def nvmlDeviceGetClockInfo(self, handle: object, type: int) -> int: ...
    def nvmlDeviceGetTotalEccErrors(
        self, handle: object, errorType: int, counterType: int
    ) -> int: ...
    def nvmlDeviceGetComputeRunningProcesses(self, handle: object) -> list[ProcessInfo]: ...
    def nvmlSystemGetProcessName(self, pid: int) -> str: ...


def load_nvml() -> Nvml:
    """The real pynvml module (it loads libnvidia-ml.so.1 on ``nvmlInit``)."""
    import pynvml

    return cast(Nvml, pynvml)


def error_code(exc: Exception) -> int | None:
    """The NVML return code an ``NVMLError`` carries."""
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


@dataclass(frozen=True, slots=True)
class Device:
    index: int
    uuid: str
    name: str


class Sampler:
    """Reads every GPU once per :meth:`sample`; a source for the agent loop."""

    def __init__(self, nvml: Nvml) -> None:
        self._nvml = nvml
        nvml.nvmlInit()
        self.devices: list[Device] = []
        for index in range(nvml.nvmlDeviceGetCount()):
            try:
                self.devices.append(self._device(index))
            except nvml.NVMLError as exc:
                log.warning("gpu unreadable", index=index, nvml_error=str(exc))
        log.info("gpus found", gpus=[f"{d.index}: {d.name} ({d.uuid})" for d in self.devices])

    def close(self) -> None:
        self._nvml.nvmlShutdown()

    def sample(self, at: datetime) -> list[Sample]:
        """One sample per readable GPU; a GPU that fails (e.g. fell off the bus) is skipped."""
        nvml, at = self._nvml, to_second(at)
        samples = []
        for index in range(nvml.nvmlDeviceGetCount()):
            try:
                samples.append(self._sample_gpu(index, at))
            except nvml.NVMLError as exc:
                log.warning("gpu unreadable", index=index, nvml_error=str(exc))
        return samples

    def _device(self, index: int) -> Device:
        handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
        nvml = self._nvml
        return Device(index, nvml.nvmlDeviceGetUUID(handle), nvml.nvmlDeviceGetName(handle))

    def _sample_gpu(self, index: int, at: datetime) -> Sample:
        nvml = self._nvml
        h = nvml.nvmlDeviceGetHandleByIndex(index)
        util = nvml.nvmlDeviceGetUtilizationRates(h)
        memory = nvml.nvmlDeviceGetMemoryInfo(h)
        return Sample(
            at=at,
            gpu_uuid=nvml.nvmlDeviceGetUUID(h),
            index=index,
            sm_util_pct=int(util.gpu),
            mem_util_pct=int(util.memory),
            mem_used_mib=int(memory.used) // MIB,
            mem_total_mib=int(memory.total) // MIB,
            power_w=nvml.nvmlDeviceGetPowerUsage(h) / 1000,
            temp_c=int(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)),
            sm_clock_mhz=int(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM)),
            mem_clock_mhz=int(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM)),
            ecc_corrected=self._ecc(h, nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED),
            ecc_uncorrected=self._ecc(h, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED),
            processes=self._processes(h),
        )

    def _ecc(self, handle: object, error_type: int) -> int | None:
        nvml = self._nvml
        try:
            return int(nvml.nvmlDeviceGetTotalEccErrors(handle, error_type, nvml.NVML_VOLATILE_ECC))
        except nvml.NVMLError as exc:
            if error_code(exc) == nvml.NVML_ERROR_NOT_SUPPORTED:
                return None
            raise

    def _processes(self, handle: object) -> list[Process]:
        nvml = self._nvml
        try:
            running = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except nvml.NVMLError as exc:
            if error_code(exc) == nvml.NVML_ERROR_NOT_SUPPORTED:
                return []
            raise
        return [
            Process(
                pid=int(p.pid),
                name=self._process_name(int(p.pid)),
                used_mib=None if p.usedGpuMemory is None else int(p.usedGpuMemory) // MIB,
            )
            for p in running
        ]

    def _process_name(self, pid: int) -> str:
        try:
            return self._nvml.nvmlSystemGetProcessName(pid)
        except self._nvml.NVMLError:
            return UNKNOWN_PROCESS
