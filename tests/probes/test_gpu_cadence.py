"""The NVML sampler's cadence: fast fields every sample, slow ones every slow_interval_s."""

from __future__ import annotations

from typing import Any

import pynvml

from sentinel.base.clock import FakeClock
from sentinel.probes.gpu import GpuSampler
from sentinel.probes.settings import GpuSettings
from sentinel.testing.nvml import GIB, GpuScript, NvmlStandIn
from sentinel.vocabulary.samples import GpuProcess, GpuSample

SLOW_CALLS = (
    "nvmlDeviceGetTotalEccErrors",
    "nvmlDeviceGetRemappedRows",
    "nvmlDeviceGetPcieReplayCounter",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetComputeRunningProcesses",
)
FAST_CALLS = (
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetClockInfo",
)


def _sampler(nvml: NvmlStandIn, clock: FakeClock, **settings: Any) -> GpuSampler:
    sampler = GpuSampler(nvml, GpuSettings(**settings), clock, proc=None)
    sampler.open()
    return sampler


def _sample_at(sampler: GpuSampler, clock: FakeClock, t: float) -> GpuSample:
    clock.set(t)
    (sample,) = [s for s in sampler.tick_sync() if isinstance(s, GpuSample)]
    return sample


def test_slow_fields_are_read_every_slow_interval_and_fast_ones_every_sample() -> None:
    """Over 21 one-second samples at slow_interval_s 10, slow calls run 3 times, fast 21."""
    nvml, clock = NvmlStandIn(), FakeClock()
    sampler = _sampler(nvml, clock, interval_s=1.0, slow_interval_s=10.0)
    for t in range(21):
        _sample_at(sampler, clock, t)
    assert {fn: 3 for fn in SLOW_CALLS} == {fn: nvml.calls.count(fn) for fn in SLOW_CALLS}
    assert {fn: 21 for fn in FAST_CALLS} == {fn: nvml.calls.count(fn) for fn in FAST_CALLS}


def test_samples_between_slow_reads_carry_the_last_values() -> None:
    """A changed ECC count and power limit show from the next slow read on, not before."""
    gpu = GpuScript(uuid="GPU-a", ecc=0, pcie=1)
    nvml, clock = NvmlStandIn([gpu]), FakeClock()
    sampler = _sampler(nvml, clock, interval_s=1.0, slow_interval_s=10.0)
    _sample_at(sampler, clock, 0)
    gpu.ecc, gpu.pcie, gpu.limit_mw = 2, 7, 400_000
    seen = [_sample_at(sampler, clock, t) for t in (5, 9, 10)]
    assert [(0, 1, 700.0), (0, 1, 700.0), (2, 7, 400.0)] == [
        (s.ecc_uncorrected_volatile, s.pcie_replay_count, s.power_limit_w) for s in seen
    ]


def test_a_slow_read_that_failed_is_retried_on_the_next_sample() -> None:
    """A transient error on a slow field costs it one sample, not a whole slow interval."""
    gpu = GpuScript(uuid="GPU-a", pcie=4)
    nvml, clock = NvmlStandIn([gpu]), FakeClock()
    sampler = _sampler(nvml, clock, interval_s=1.0, slow_interval_s=10.0)
    nvml.fail["nvmlDeviceGetPcieReplayCounter"] = pynvml.NVMLError_Unknown
    first = _sample_at(sampler, clock, 0)
    del nvml.fail["nvmlDeviceGetPcieReplayCounter"]
    second = _sample_at(sampler, clock, 1)
    third = _sample_at(sampler, clock, 2)
    assert [None, 4, 4] == [s.pcie_replay_count for s in (first, second, third)]
    assert 2 == nvml.calls.count("nvmlDeviceGetPcieReplayCounter")


def test_processes_are_read_at_once_when_memory_used_moves() -> None:
    """Memory filled by a new process: the very sample that shows it names the process."""
    gpu = GpuScript(uuid="GPU-a", total=80 * GIB, used=10 * GIB, procs=[(100, 9 * GIB)])
    nvml, clock = NvmlStandIn([gpu]), FakeClock()
    sampler = _sampler(nvml, clock, interval_s=1.0, slow_interval_s=10.0)
    _sample_at(sampler, clock, 0)
    gpu.used, gpu.procs = 79 * GIB, [(100, 9 * GIB), (200, 69 * GIB)]
    sample = _sample_at(sampler, clock, 1)
    assert (GpuProcess(pid=100, used_bytes=9 * GIB), GpuProcess(pid=200, used_bytes=69 * GIB)) == (
        sample.processes
    )


def test_processes_wait_for_the_slow_interval_while_memory_stays_put() -> None:
    """A move under processes_on_memory_change of the total does not re-read the processes."""
    gpu = GpuScript(uuid="GPU-a", total=100 * GIB, used=10 * GIB, procs=[(100, 9 * GIB)])
    nvml, clock = NvmlStandIn([gpu]), FakeClock()
    sampler = _sampler(
        nvml, clock, interval_s=1.0, slow_interval_s=10.0, processes_on_memory_change=0.05
    )
    _sample_at(sampler, clock, 0)
    gpu.used, gpu.procs = 14 * GIB, [(100, 13 * GIB)]
    before, due = _sample_at(sampler, clock, 1), _sample_at(sampler, clock, 10)
    assert [9 * GIB, 13 * GIB] == [s.processes[0].used_bytes for s in (before, due)]


def test_slow_interval_at_most_the_interval_reads_every_field_every_sample() -> None:
    """slow_interval_s equal to interval_s keeps the old cadence: every field each sample."""
    nvml, clock = NvmlStandIn(), FakeClock()
    sampler = _sampler(nvml, clock, interval_s=1.0, slow_interval_s=1.0)
    for t in range(4):
        _sample_at(sampler, clock, t)
    assert {fn: 4 for fn in SLOW_CALLS} == {fn: nvml.calls.count(fn) for fn in SLOW_CALLS}


def test_a_gpu_that_comes_back_has_its_slow_fields_read_at_once() -> None:
    """After a lost GPU is reacquired, its first sample reads the slow fields again."""
    gpu = GpuScript(uuid="GPU-a", ecc=0)
    nvml, clock = NvmlStandIn([gpu]), FakeClock()
    sampler = _sampler(nvml, clock, interval_s=1.0, slow_interval_s=10.0)
    _sample_at(sampler, clock, 0)
    nvml.fail["nvmlDeviceGetPowerUsage"] = pynvml.NVMLError_GpuIsLost
    clock.set(1)
    assert ["gpu_lost"] == [getattr(s, "kind", None) for s in sampler.tick_sync()]
    del nvml.fail["nvmlDeviceGetPowerUsage"]
    gpu.ecc = 3
    assert 3 == _sample_at(sampler, clock, 2).ecc_uncorrected_volatile
