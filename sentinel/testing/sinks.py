"""Recording ends of sentinel's ports: a sample sink and a teller.

:class:`RecordingSink` goes where a probe or a replay sends samples (a
``SampleSink``); :class:`RecordingTeller` where a stage tells people (the
``Teller`` port), when a test wants the notices rather than real messages.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from sentinel.vocabulary.notices import Notice
from sentinel.vocabulary.samples import Sample

N = TypeVar("N", bound=Notice)


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


class RecordingTeller:
    """Stand-in for the notify stage's teller: keeps every notice, in order."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def tell(self, notice: Notice) -> None:
        self.notices.append(notice)

    def of(self, kind: type[N]) -> list[N]:
        """The notices of one type (``PageRequest``, ``ActionUpdate`` ...)."""
        return [n for n in self.notices if isinstance(n, kind)]
