"""One clock for the whole daemon, injected everywhere time matters.

Production uses :class:`SystemClock`; tests use :class:`FakeClock` and run
hours of incident timeline in milliseconds, deterministically.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """What sentinel needs to know about time."""

    def now(self) -> float:
        """Wall-clock time, epoch seconds (for timestamps people read)."""
        ...

    def monotonic(self) -> float:
        """A clock that never goes back (for durations and deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait this long on this clock."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to, for tests.

    ``sleep`` parks the caller until :meth:`advance` moves time past its
    deadline; wall time and monotonic time move together.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._epoch_offset = start
        self._t = 0.0
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._epoch_offset + self._t

    def monotonic(self) -> float:
        return self._t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._t + seconds, next(self._seq), fut))
        await fut

    def set(self, monotonic: float) -> None:
        """Jump (forward only) without waking sleepers; for purely synchronous tests."""
        if monotonic < self._t:
            raise ValueError("a FakeClock never goes back")
        self._t = monotonic

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline passes, in order."""
        target = self._t + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._t = max(self._t, deadline)
            if not fut.done():
                fut.set_result(None)
            # let woken tasks run (and maybe sleep again) before moving on
            for _ in range(5):
                await asyncio.sleep(0)
        self._t = target
        for _ in range(5):
            await asyncio.sleep(0)
