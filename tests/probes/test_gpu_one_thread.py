"""One NVML thread: the Xid watcher's thread also takes the GPU samples (Ticks)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sentinel.base.clock import FakeClock
from sentinel.probes.gpu import GpuSampler
from sentinel.probes.gpu_probe import GpuProbe
from sentinel.probes.settings import GpuSettings
from sentinel.probes.xid import Ticks, XidWatcher
from sentinel.testing.nvml import GpuScript, NvmlStandIn
from sentinel.testing.sinks import RecordingSink
from sentinel.vocabulary.samples import GpuEvent, GpuSample, Sample


class ThreadNotingSampler(GpuSampler):
    """The real sampler, noting which thread each tick ran on."""

    tick_threads: list[str]

    def tick_sync(self) -> list[Sample]:
        self.tick_threads.append(threading.current_thread().name)
        return super().tick_sync()


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def _gpu_samples(sink: RecordingSink) -> list[GpuSample]:
    return [s for s in sink.got if isinstance(s, GpuSample)]


async def test_ticks_run_on_the_injected_clocks_interval_between_waits() -> None:
    """A sample at start, none more while time stands still, the next once it moved."""
    nvml, clock, sink = NvmlStandIn(), FakeClock(), RecordingSink()
    sampler = GpuSampler(nvml, GpuSettings(interval_s=1.0), clock, proc=None)
    sampler.open()
    watcher = XidWatcher(nvml, None, clock, wait_ms=10, ticks=Ticks(1.0, sampler.tick_sync))
    task = asyncio.create_task(watcher.run(sink))
    await sink.wait_for(1)
    await asyncio.sleep(0.2)  # real time passes, the injected clock does not
    still = len(sink.got)
    clock.set(1.0)
    await sink.wait_for(2)
    await _stop(task)
    assert 1 == still
    assert [clock.now() - 1.0, clock.now()] == [s.ts for s in _gpu_samples(sink)]


async def test_xid_events_and_samples_share_the_thread() -> None:
    """An Xid pushed between ticks reaches the sink beside the samples."""
    gpu = GpuScript(uuid="GPU-a")
    nvml, clock, sink = NvmlStandIn([gpu]), FakeClock(), RecordingSink()
    sampler = GpuSampler(nvml, GpuSettings(), clock, proc=None)
    sampler.open()
    watcher = XidWatcher(nvml, None, clock, wait_ms=10, ticks=Ticks(1.0, sampler.tick_sync))
    task = asyncio.create_task(watcher.run(sink))
    await sink.wait_for(1)
    nvml.push_xid(gpu, 31)
    await sink.wait_for(2)
    await _stop(task)
    assert [("GPU-a", 31)] == [(e.uuid, e.xid) for e in sink.got if isinstance(e, GpuEvent)]


async def test_without_xid_support_the_thread_keeps_sampling() -> None:
    """No GPU supports Xid events: the status says so and samples still come."""
    nvml, clock, sink = (
        NvmlStandIn([GpuScript(uuid="GPU-old", events=0x1)]),
        FakeClock(),
        RecordingSink(),
    )
    sampler = GpuSampler(nvml, GpuSettings(), clock, proc=None)
    sampler.open()
    watcher = XidWatcher(nvml, None, clock, wait_ms=10, ticks=Ticks(1.0, sampler.tick_sync))
    task = asyncio.create_task(watcher.run(sink))
    await sink.wait_for(1)
    clock.set(1.0)
    await sink.wait_for(2)
    await _stop(task)
    assert watcher.status.startswith("Xid events unavailable")
    assert ["GPU-old", "GPU-old"] == [s.uuid for s in _gpu_samples(sink)]


async def test_gpu_probe_with_xid_events_samples_on_the_watchers_thread() -> None:
    """The daemon's GPU probe ticks on the xid-watcher thread, not asyncio's executor."""
    nvml, clock, sink = NvmlStandIn(), FakeClock(), RecordingSink()
    sampler = ThreadNotingSampler(nvml, GpuSettings(), clock, proc=None)
    sampler.tick_threads = []
    sampler.open()
    task = asyncio.create_task(GpuProbe(nvml, sampler, xid_events=True).run(sink, clock))
    await sink.wait_for(1)
    clock.set(1.0)
    await sink.wait_for(2)
    await _stop(task)
    assert ["xid-watcher", "xid-watcher"] == sampler.tick_threads
