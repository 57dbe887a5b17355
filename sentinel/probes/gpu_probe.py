"""The GPU probe the daemon runs: the NVML sampler and its Xid watcher, side by side."""

from __future__ import annotations

import asyncio
from typing import Any

from sentinel.base.clock import Clock
from sentinel.probes.gpu import GpuSampler
from sentinel.probes.xid import XidWatcher
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
        xid = XidWatcher(self.nvml, [uuid for _, uuid in self.sampler.gpus], clock=clock)
        async with asyncio.TaskGroup() as group:
            group.create_task(self.sampler.run(sink, clock))
            group.create_task(xid.run(sink))

    async def once(self) -> list[Sample]:
        return list(await self.sampler.tick())
