"""asyncio helpers sentinel needs on Python 3.11."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(aw: Awaitable[T], seconds: float | None) -> T:
    """``asyncio.wait_for`` that never swallows a cancellation.

    On 3.11, a cancel that lands as the awaited call finishes is lost: ``wait_for``
    returns the call's result and the task runs on (a probe told to stop keeps probing;
    CPython gh-86296, fixed by 3.12's rewrite). The cancel request is still counted on
    the task, so it is raised here instead.
    """
    result = await asyncio.wait_for(aw, seconds)
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return result
