"""The GPU probe the daemon runs: the NVML sampler and its Xid watcher, on one thread.

With Xid events on, the watcher's thread also takes the samples between its waits, so
the probe holds one thread (asyncio's default executor is not started for it).
"""

from __future__ import annotations

from typing import Any

from sentinel.base.clock import Clock
from sentinel.probes.gpu import GpuSampler
from sentinel.probes.xid import Ticks, XidWatcher
from sentinel.vocabulary.ports import SampleSink
from sentinel.vocabulary.samples import Sample


class GpuProbe:
    """The NVML sampler (and, when asked, its Xid watcher) as one daemon probe."""

    name = "gpu"

    def __init__(self, nvml: Any, sampler: GpuSampler, xid_events: bool) -> None:
        self.nvml = nvml
        self.sampler = sampler
        self.xid = xid_events

    async def run(self, sink: SampleSink, clock: Clock) -> None:
        if not self.xid or not self.sampler.gpus:  # no NVML: the sampler says why, once
            await self.sampler.run(sink, clock)
            return
        ticks = Ticks(self.sampler.interval_s, self.sampler.tick_sync)
        uuids = [uuid for _, uuid in self.sampler.gpus]
        await XidWatcher(self.nvml, uuids, clock=clock, ticks=ticks).run(sink)

    async def once(self) -> list[Sample]:
        return list(await self.sampler.tick())
