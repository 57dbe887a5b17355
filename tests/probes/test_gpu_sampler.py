"""The NVML sampler, against NvmlStandIn (no GPU here; real traces in test_replay_traces)."""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace
from typing import Any

import pynvml
import pytest

from sentinel.base.clock import FakeClock
from sentinel.probes import nvml as nv
from sentinel.probes.gpu import GpuSampler, GpuSelectionError, parse_source
from sentinel.probes.settings import GpuSettings
from sentinel.testing.nvml import (
    ERROR_CLASSES,
    GIB,
    SAMPLED_FUNCTIONS,
    GpuScript,
    NvmlStandIn,
)
from sentinel.vocabulary.samples import GpuEvent, GpuProcess, GpuSample, Sample

ALL_ERRORS: list[type[Exception]] = [*ERROR_CLASSES, pynvml.NVMLLibraryMismatchError]


def _sampler(nvml: NvmlStandIn, clock: FakeClock | None = None, **settings: Any) -> GpuSampler:
    sampler = GpuSampler(nvml, GpuSettings(**settings), clock or FakeClock(), proc=None)
    sampler.open()
    return sampler


def _samples(out: list[Sample]) -> list[GpuSample]:
    return [s for s in out if isinstance(s, GpuSample)]


def _events(out: list[Sample]) -> list[GpuEvent]:
    return [s for s in out if isinstance(s, GpuEvent)]


def test_sample_carries_every_field_in_sentinel_units() -> None:
    """A tick turns NVML's answers into one GpuSample: mW become W, reasons get names."""
    gpu = GpuScript(uuid="GPU-a", reasons=0x4 | 0x1, procs=[(4242, 3 * GIB)], rows=(1, 0, 1, 0))
    clock = FakeClock()
    sampler = _sampler(NvmlStandIn([gpu]), clock)
    expected = GpuSample(
        ts=clock.now(),
        index=0,
        uuid=gpu.uuid,
        name=gpu.name,
        memory_total_bytes=gpu.total,
        memory_used_bytes=gpu.used,
        memory_free_bytes=gpu.total - gpu.used - gpu.reserved,
        memory_reserved_bytes=gpu.reserved,
        utilization_gpu_pct=float(gpu.util_gpu),
        utilization_memory_pct=float(gpu.util_mem),
        temperature_c=float(gpu.temp),
        temperature_slowdown_c=float(gpu.thresholds[1]),
        temperature_shutdown_c=float(gpu.thresholds[0]),
        temperature_gpu_max_c=float(gpu.thresholds[3]),
        power_w=gpu.power_mw / 1000,
        power_limit_w=gpu.limit_mw / 1000,
        sm_clock_mhz=float(gpu.sm_clock),
        sm_clock_max_mhz=float(gpu.sm_max),
        clock_event_reasons=0x5,
        clock_event_names=("GpuIdle", "SwPowerCap"),
        ecc_uncorrected_volatile=gpu.ecc,
        remapped_rows_pending=True,
        remapped_rows_failure=False,
        pcie_replay_count=gpu.pcie,
        processes=(GpuProcess(pid=4242, used_bytes=3 * GIB),),
    )
    assert [expected] == sampler.tick_sync()


def test_not_supported_field_is_asked_once_and_stays_absent() -> None:
    """A NotSupported field is None and never queried again on later ticks."""
    nvml = NvmlStandIn()
    nvml.fail["nvmlDeviceGetPcieReplayCounter"] = pynvml.NVMLError_NotSupported
    sampler = _sampler(nvml)
    samples = [_samples(sampler.tick_sync())[0] for _ in range(3)]
    assert [None, None, None] == [s.pcie_replay_count for s in samples]
    assert 1 == nvml.calls.count("nvmlDeviceGetPcieReplayCounter")
    assert 3 == nvml.calls.count("nvmlDeviceGetPowerUsage")


def test_transient_error_is_asked_again_next_tick() -> None:
    """An Unknown error costs that field for one tick only."""
    nvml = NvmlStandIn()
    nvml.fail["nvmlDeviceGetPowerUsage"] = pynvml.NVMLError_Unknown
    sampler = _sampler(nvml)
    first = _samples(sampler.tick_sync())[0]
    del nvml.fail["nvmlDeviceGetPowerUsage"]
    second = _samples(sampler.tick_sync())[0]
    assert (None, nvml.gpus[0].power_mw / 1000) == (first.power_w, second.power_w)


def test_thresholds_and_max_clock_are_read_once() -> None:
    """Static facts (three thresholds, max SM clock) are read on the first tick only."""
    nvml = NvmlStandIn()
    sampler = _sampler(nvml)
    for _ in range(4):
        sampler.tick_sync()
    assert 3 == nvml.calls.count("nvmlDeviceGetTemperatureThreshold")
    assert 1 == nvml.calls.count("nvmlDeviceGetMaxClockInfo")


def test_unsupported_threshold_is_absent_while_others_read() -> None:
    """A GPU without a GPU-max threshold still reports slowdown and shutdown."""
    gpu = GpuScript(uuid="GPU-a", thresholds={0: 95, 1: 89})
    sample = _samples(_sampler(NvmlStandIn([gpu])).tick_sync())[0]
    assert (89.0, 95.0, None) == (
        sample.temperature_slowdown_c,
        sample.temperature_shutdown_c,
        sample.temperature_gpu_max_c,
    )


def test_memory_falls_back_to_v1_when_v2_is_unsupported() -> None:
    """Where memory v2 answers ArgumentVersionMismatch, v1 gives total/used/free."""

    class OldDriver(NvmlStandIn):
        """Stand-in of a driver without nvmlDeviceGetMemoryInfo_v2."""

        def nvmlDeviceGetMemoryInfo(self, h: Any, version: int | None = None) -> Any:
            if version:
                self._enter("nvmlDeviceGetMemoryInfo")
                raise pynvml.NVMLError_ArgumentVersionMismatch()
            return super().nvmlDeviceGetMemoryInfo(h)

    nvml = OldDriver()
    sampler = _sampler(nvml)
    samples = [_samples(sampler.tick_sync())[0] for _ in range(2)]
    gpu = nvml.gpus[0]
    assert [(gpu.used, None)] * 2 == [
        (s.memory_used_bytes, s.memory_reserved_bytes) for s in samples
    ]
    assert 3 == nvml.calls.count("nvmlDeviceGetMemoryInfo")  # v2 once, then v1 each tick


@pytest.mark.parametrize("error", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_on_every_call_never_crashes_a_tick(error: type[Exception]) -> None:
    """Each NVML error class, raised by each function the sampler calls, ends as data."""
    for fn in SAMPLED_FUNCTIONS:
        nvml = NvmlStandIn()
        sampler = _sampler(nvml)
        nvml.fail[fn] = error
        out = sampler.tick_sync()
        name = error.__name__
        if name in nv.GONE_ERRORS and fn != "nvmlDeviceGetHandleByUUID":
            assert ["nvml_unavailable"] == [e.kind for e in _events(out)], fn
        elif name in nv.LOST_ERRORS and fn not in (
            "nvmlDeviceGetCount",
            "nvmlDeviceGetHandleByUUID",
        ):
            assert [("gpu_lost", "GPU-standin-0")] == [(e.kind, e.uuid) for e in _events(out)], fn
        else:
            assert ["GPU-standin-0"] == [s.uuid for s in _samples(out)], fn


@pytest.mark.parametrize("error", ALL_ERRORS, ids=lambda c: c.__name__)
def test_library_raising_everywhere_yields_events_not_exceptions(error: type[Exception]) -> None:
    """When every call raises the same error class, ticks go on returning data."""
    nvml = NvmlStandIn()
    sampler = _sampler(nvml)
    nvml.fail_all = error
    outs = [sampler.tick_sync() for _ in range(3)]
    kinds = [e.kind for out in outs for e in _events(out)]
    if error.__name__ in nv.GONE_ERRORS:
        assert ["nvml_unavailable"] == kinds  # reported once, not every tick
    elif error.__name__ in nv.LOST_ERRORS:
        assert ["gpu_lost"] == kinds
    else:
        all_none = [
            s.memory_used_bytes is None and s.power_w is None for o in outs for s in _samples(o)
        ]
        assert [True, True, True] == all_none


@pytest.mark.parametrize("error", ALL_ERRORS, ids=lambda c: c.__name__)
def test_open_with_failing_init_says_nvml_unavailable(error: type[Exception]) -> None:
    """An nvmlInit that raises anything becomes NvmlUnavailable with a readable reason."""
    nvml = NvmlStandIn()
    nvml.fail["nvmlInit"] = error
    sampler = GpuSampler(nvml, GpuSettings(), FakeClock())
    with pytest.raises(nv.NvmlUnavailable, match="NVML is not available"):
        sampler.open()


def test_nonsense_values_become_absent_and_unknown_bits_keep_their_value() -> None:
    """Negative, NaN and wrongly typed readings are None; unknown reason bits are named."""
    gpu = GpuScript(uuid="GPU-a", used=-5, temp=-40, power_mw=-1, reasons=0x4 | 0x400 | 0x8000)
    nvml = NvmlStandIn([gpu])

    class Garbage(NvmlStandIn):
        """Stand-in returning the wrong types for some calls."""

        def nvmlDeviceGetUtilizationRates(self, h: Any) -> Any:
            return SimpleNamespace(gpu=math.nan, memory="lots")

        def nvmlDeviceGetRemappedRows(self, h: Any) -> Any:
            return (1, 2)

        def nvmlDeviceGetComputeRunningProcesses(self, h: Any) -> Any:
            return [SimpleNamespace(pid=-3, usedGpuMemory=1), object(), SimpleNamespace(pid=7)]

        def nvmlDeviceGetPcieReplayCounter(self, h: Any) -> Any:
            return True

    nvml = Garbage([gpu])
    sample = _samples(_sampler(nvml).tick_sync())[0]
    assert (None, None, None, None, None, None, None) == (
        sample.memory_used_bytes,
        sample.temperature_c,
        sample.power_w,
        sample.utilization_gpu_pct,
        sample.utilization_memory_pct,
        sample.remapped_rows_pending,
        sample.pcie_replay_count,
    )
    assert ("SwPowerCap", "Unknown0x400", "Unknown0x8000") == sample.clock_event_names
    assert 0x8404 == sample.clock_event_reasons
    assert (GpuProcess(pid=7, used_bytes=None),) == sample.processes


def test_negative_reason_mask_is_absent() -> None:
    """A negative reasons mask is nonsense: no mask, no names."""
    sample = _samples(_sampler(NvmlStandIn([GpuScript(uuid="GPU-a", reasons=-1)])).tick_sync())[0]
    assert (None, ()) == (sample.clock_event_reasons, sample.clock_event_names)


def test_gpu_falling_off_the_bus_is_one_gpu_lost_event_then_recovers() -> None:
    """A dropped GPU count gives gpu_lost for that UUID once; samples resume when it is back."""
    a, b = GpuScript(uuid="GPU-a"), GpuScript(uuid="GPU-b")
    nvml = NvmlStandIn([a, b])
    sampler = _sampler(nvml)
    assert ["GPU-a", "GPU-b"] == [s.uuid for s in _samples(sampler.tick_sync())]
    nvml.gpus.remove(b)
    lost = sampler.tick_sync()
    again = sampler.tick_sync()
    assert [("gpu_lost", "GPU-b")] == [(e.kind, e.uuid) for e in _events(lost)]
    assert (["GPU-a"], []) == ([s.uuid for s in _samples(again)], _events(again))
    nvml.gpus.append(b)
    assert ["GPU-a", "GPU-b"] == [s.uuid for s in _samples(sampler.tick_sync())]


def test_gpu_is_lost_on_a_field_loses_only_that_gpu() -> None:
    """GpuIsLost while sampling one GPU emits gpu_lost for it; the other keeps sampling."""
    a, b = GpuScript(uuid="GPU-a"), GpuScript(uuid="GPU-b")

    class LosesB(NvmlStandIn):
        """Stand-in whose second GPU answers GpuIsLost to power reads."""

        def nvmlDeviceGetPowerUsage(self, h: Any) -> int:
            if h is b:
                raise pynvml.NVMLError_GpuIsLost()
            return super().nvmlDeviceGetPowerUsage(h)

    out = _sampler(LosesB([a, b])).tick_sync()
    assert (["GPU-a"], [("gpu_lost", "GPU-b", "NVMLError_GpuIsLost")]) == (
        [s.uuid for s in _samples(out)],
        [(e.kind, e.uuid, e.detail) for e in _events(out)],
    )


def test_library_vanishing_mid_run_then_returning() -> None:
    """Uninitialized everywhere mid-run: one nvml_unavailable, then samples after re-init."""
    nvml = NvmlStandIn()
    sampler = _sampler(nvml)
    sampler.tick_sync()
    nvml.fail_all = pynvml.NVMLError_Uninitialized
    gone = [sampler.tick_sync() for _ in range(3)]
    nvml.fail_all = None
    back = sampler.tick_sync()
    assert [["nvml_unavailable"], [], []] == [[e.kind for e in _events(o)] for o in gone]
    assert ["GPU-standin-0"] == [s.uuid for s in _samples(back)]


@pytest.mark.parametrize(
    ("devices", "expected"),
    [([], ["GPU-a", "GPU-b", "GPU-c"]), ([2, 0], ["GPU-c", "GPU-a"]), (["1"], ["GPU-b"])],
)
def test_device_selection_by_index(devices: list[int | str], expected: list[str]) -> None:
    """gpu.devices picks GPUs by index (int or digit string); empty means all."""
    nvml = NvmlStandIn([GpuScript(uuid=f"GPU-{c}") for c in "abc"])
    sampler = _sampler(nvml, devices=devices)
    assert expected == [s.uuid for s in _samples(sampler.tick_sync())]


def test_device_selection_by_uuid_keeps_its_index() -> None:
    """A UUID selects that GPU and the sample carries its real index."""
    nvml = NvmlStandIn([GpuScript(uuid=f"GPU-{c}") for c in "abc"])
    sampler = _sampler(nvml, devices=["GPU-c"])
    assert [(2, "GPU-c")] == [(s.index, s.uuid) for s in _samples(sampler.tick_sync())]


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ([5], "no GPU with index 5 \\(this machine has 1\\)"),
        (["GPU-x"], "no GPU with UUID 'GPU-x'"),
    ],
)
def test_unknown_device_is_a_clear_error(devices: list[int | str], message: str) -> None:
    """Selecting a GPU that is not there names the setting and the GPU."""
    sampler = GpuSampler(NvmlStandIn(), GpuSettings(devices=devices), FakeClock())
    with pytest.raises(GpuSelectionError, match=f"gpu.devices: {message}"):
        sampler.open()


async def test_run_samples_on_the_interval_of_the_injected_clock() -> None:
    """run() samples at 0, 1, 2, 3 s of a FakeClock with interval_s=1."""
    clock = FakeClock()
    nvml = NvmlStandIn()
    sampler = _sampler(nvml, clock, interval_s=1.0)
    got: list[Sample] = []

    async def sink(s: Sample) -> None:
        got.append(s)

    task = asyncio.create_task(sampler.run(sink))
    for i in range(3):
        await _until(lambda i=i: len(got) > i)
        await clock.advance(1.0)
    await _until(lambda: len(got) == 4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [0.0, 1.0, 2.0, 3.0] == [s.ts - got[0].ts for s in got]


async def test_run_without_nvml_sends_one_event_and_returns() -> None:
    """With no library, run() tells the sink once and ends: the daemon goes on without GPUs."""
    nvml = NvmlStandIn()
    nvml.fail["nvmlInit"] = pynvml.NVMLError_LibraryNotFound
    got: list[Sample] = []

    async def sink(s: Sample) -> None:
        got.append(s)

    await GpuSampler(nvml, GpuSettings(), FakeClock()).run(sink)
    assert [("nvml_unavailable", True)] == [
        (e.kind, "libnvidia-ml.so.1 was not found" in e.detail) for e in _events(got)
    ]


async def test_sample_once_returns_samples_and_keeps_events() -> None:
    """sample_once() gives GpuSamples; events of that tick wait in take_events()."""
    a, b = GpuScript(uuid="GPU-a"), GpuScript(uuid="GPU-b")
    nvml = NvmlStandIn([a, b])
    sampler = _sampler(nvml)
    nvml.gpus.remove(b)
    samples = await sampler.sample_once()
    assert (["GPU-a"], [("gpu_lost", "GPU-b")], []) == (
        [s.uuid for s in samples],
        [(e.kind, e.uuid) for e in sampler.take_events()],
        sampler.take_events(),
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("nvml", ("nvml", None)),
        ("off", ("off", None)),
        ("replay:a/b.jsonl", ("replay", "a/b.jsonl")),
    ],
)
def test_parse_source(source: str, expected: tuple[str, str | None]) -> None:
    """gpu.source forms parse into their kind and path."""
    assert expected == parse_source(source)


@pytest.mark.parametrize("source", ["replay:", "nvm", "file.jsonl"])
def test_parse_source_rejects_malformed(source: str) -> None:
    """A malformed gpu.source is a ValueError naming the field."""
    with pytest.raises(ValueError, match=r"gpu\.source"):
        parse_source(source)


async def _until(cond: Any, limit: float = 5.0) -> None:
    """Wait (real time; the sampler ticks in a thread) until cond() holds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.002)
