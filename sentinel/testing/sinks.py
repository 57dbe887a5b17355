"""A recording sample sink: hand it to a probe or a replay where a ``SampleSink`` goes."""

from __future__ import annotations

import asyncio

from sentinel.vocabulary.samples import Sample


class RecordingSink:
    """Keeps every sample it gets, in order, in ``got``."""

    def __init__(self) -> None:
        self.got: list[Sample] = []

    async def __call__(self, sample: Sample) -> None:
        self.got.append(sample)

    async def wait_for(self, n: int, limit_s: float = 5.0) -> None:
        """Wait (real time) until ``n`` samples arrived, for probes fed by a thread."""
        loop = asyncio.get_running_loop()
        end = loop.time() + limit_s
        while len(self.got) < n:
            if loop.time() >= end:
                raise AssertionError(f"only {len(self.got)} of {n} samples arrived")
            await asyncio.sleep(0.005)
