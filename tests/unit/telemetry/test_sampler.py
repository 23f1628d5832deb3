"""The sampler against the in-process NVML: values, units, and what NVML cannot tell."""

from __future__ import annotations

from datetime import UTC, datetime

import pynvml
import pytest

from control_plane.telemetry.agent.fake_nvml import (
    GIB,
    FakeGpu,
    FakeNvml,
    FakeProcess,
    Reading,
    fake_uuid,
    simulated_nvml,
)
from control_plane.telemetry.agent.nvml import UNKNOWN_PROCESS, Sampler

AT = datetime(2026, 12, 5, 10, 0, 0, 731_000, tzinfo=UTC)


def busy_h100() -> FakeGpu:
    return FakeGpu(
        fake_uuid(0),
        mem_total_bytes=80 * GIB,
        ecc_corrected=3,
        ecc_uncorrected=1,
        readings=[
            Reading(
                sm_util_pct=37,
                mem_util_pct=12,
                mem_used_bytes=1024 * (1 << 20) + 123_456,  # 1024 MiB and a bit
                power_mw=212_500,
                temp_c=54,
                sm_clock_mhz=1410,
                mem_clock_mhz=1593,
                processes=(
                    FakeProcess(1234, "python", 1000 * (1 << 20)),
                    FakeProcess(1300, None, None),  # exited, or in another PID namespace
                ),
            )
        ],
    )


def no_ecc_card() -> FakeGpu:
    return FakeGpu(fake_uuid(1), name="NVIDIA GeForce RTX 4090", ecc_supported=False)


class TestSampler:
    def test_values_and_units_are_those_of_the_wire_format(self) -> None:
        (sample,) = Sampler(FakeNvml([busy_h100()])).sample(AT)

        assert sample.at == datetime(2026, 12, 5, 10, 0, 0, tzinfo=UTC)
        assert sample.gpu_uuid == fake_uuid(0)
        assert sample.index == 0
        assert (sample.sm_util_pct, sample.mem_util_pct) == (37, 12)
        assert (sample.mem_used_mib, sample.mem_total_mib) == (1024, 81920)  # bytes -> MiB
        assert sample.power_w == 212.5  # mW -> W
        assert (sample.temp_c, sample.sm_clock_mhz, sample.mem_clock_mhz) == (54, 1410, 1593)
        assert (sample.ecc_corrected, sample.ecc_uncorrected) == (3, 1)

    def test_processes_have_names_and_memory_or_null_when_nvml_cannot_tell(self) -> None:
        (sample,) = Sampler(FakeNvml([busy_h100()])).sample(AT)

        assert [(p.pid, p.name, p.used_mib) for p in sample.processes] == [
            (1234, "python", 1000),
            (1300, UNKNOWN_PROCESS, None),
        ]

    def test_ecc_not_supported_is_null_not_zero(self) -> None:
        samples = Sampler(FakeNvml([busy_h100(), no_ecc_card()])).sample(AT)

        assert [(s.index, s.ecc_corrected, s.ecc_uncorrected) for s in samples] == [
            (0, 3, 1),
            (1, None, None),
        ]

    def test_a_lost_gpu_is_skipped_and_the_others_still_sampled(self) -> None:
        lost = FakeGpu(fake_uuid(1), lost=True)

        samples = Sampler(FakeNvml([busy_h100(), lost, no_ecc_card()])).sample(AT)

        assert [s.index for s in samples] == [0, 2]

    def test_each_pass_reads_the_current_values(self) -> None:
        nvml = FakeNvml([FakeGpu(fake_uuid(0), readings=[Reading(5), Reading(90)])])
        sampler = Sampler(nvml)

        first = sampler.sample(AT)
        nvml.advance()
        second = sampler.sample(AT)

        assert [first[0].sm_util_pct, second[0].sm_util_pct] == [5, 90]

    def test_devices_are_named_at_start_and_nvml_shut_down_on_close(self) -> None:
        nvml = FakeNvml([busy_h100(), no_ecc_card()])
        sampler = Sampler(nvml)

        assert [(d.index, d.name) for d in sampler.devices] == [
            (0, "NVIDIA H100 80GB HBM3"),
            (1, "NVIDIA GeForce RTX 4090"),
        ]
        sampler.close()
        assert nvml.init_count == 0


class TestFakeNvmlIsFaithful:
    """The fake answers as pynvml does: its types, its errors, its units."""

    def test_calls_before_init_raise_pynvmls_uninitialized(self) -> None:
        with pytest.raises(pynvml.NVMLError_Uninitialized):
            FakeNvml([busy_h100()]).nvmlDeviceGetCount()

    def test_returns_pynvmls_own_structures(self) -> None:
        nvml = FakeNvml([busy_h100()])
        nvml.nvmlInit()
        h = nvml.nvmlDeviceGetHandleByIndex(0)

        memory = nvml.nvmlDeviceGetMemoryInfo(h)
        assert isinstance(memory, pynvml.c_nvmlMemory_t)
        assert memory.total == memory.used + memory.free == 80 * GIB
        assert isinstance(nvml.nvmlDeviceGetUtilizationRates(h), pynvml.c_nvmlUtilization_t)
        (proc, _) = nvml.nvmlDeviceGetComputeRunningProcesses(h)
        assert isinstance(proc, pynvml.nvmlFriendlyObject)
        assert (proc.pid, proc.usedGpuMemory) == (1234, 1000 * (1 << 20))
        assert nvml.nvmlDeviceGetPowerUsage(h) == 212_500  # milliwatts, as NVML

    def test_errors_are_pynvmls_where_real_nvml_fails(self) -> None:
        nvml = FakeNvml([no_ecc_card()])
        nvml.nvmlInit()
        h = nvml.nvmlDeviceGetHandleByIndex(0)

        with pytest.raises(pynvml.NVMLError_NotSupported):
            nvml.nvmlDeviceGetTotalEccErrors(
                h, pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_VOLATILE_ECC
            )
        with pytest.raises(pynvml.NVMLError_InvalidArgument):
            nvml.nvmlDeviceGetHandleByIndex(1)
        with pytest.raises(pynvml.NVMLError_InvalidArgument):
            nvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_GRAPHICS)
        with pytest.raises(pynvml.NVMLError_NotFound):
            nvml.nvmlSystemGetProcessName(999_999)

    def test_it_implements_no_call_the_interface_does_not_name(self) -> None:
        names = {n for n in dir(FakeNvml) if n.startswith("nvml")}
        documented = {n for n in dir(pynvml) if n in names}

        assert names == documented  # every call is a real pynvml function
        assert len(names) == 14

    def test_simulated_gpus_move_from_pass_to_pass(self) -> None:
        sampler = Sampler(simulated_nvml(4))

        passes = [sampler.sample(AT) for _ in range(3)]

        assert all(len(p) == 4 for p in passes)
        assert len({p[2].sm_util_pct for p in passes}) == 3  # the inference GPU's load moves
