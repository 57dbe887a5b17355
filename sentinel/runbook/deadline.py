"""Awaiting an action with a deadline on the injected clock (a fake clock in tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from sentinel.base.clock import Clock
from sentinel.runbook.errors import StepTimeout

T = TypeVar("T")


async def timed(clock: Clock, coro: Awaitable[T], seconds: float) -> T:
    """Await ``coro``; StepTimeout (after cancelling it) when ``clock`` passes ``seconds``."""
    work = asyncio.ensure_future(coro)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        work.cancel()
        timer.cancel()
        raise
    if work.done():
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)
        return work.result()
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    raise StepTimeout(f"timed out after {seconds:g} s")
