"""A probe told to stop stops: Triton calls never swallow a cancellation (3.11's
asyncio.wait_for returned the call's result instead when both landed together)."""

from __future__ import annotations

import asyncio

from sentinel.probes import triton as triton_adapter
from sentinel.probes.settings import TritonSettings


async def test_a_cancel_that_lands_as_the_call_finishes_is_not_swallowed() -> None:
    """Cancelling the caller right after the call's answer arrives still cancels it."""
    adapter = triton_adapter.connect(TritonSettings(url="127.0.0.1:1", protocol="http"))
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[int] = loop.create_future()

    async def call() -> int:
        return await answer

    task = asyncio.create_task(adapter._deadline(call(), 5.0, "live"))
    for _ in range(3):
        await asyncio.sleep(0)
    answer.set_result(1)  # the answer is in, the caller not yet resumed ...
    accepted = task.cancel()  # ... when the daemon stops it
    outcome = await asyncio.gather(task, return_exceptions=True)
    await adapter.close()
    assert accepted  # otherwise the case tests nothing
    assert isinstance(outcome[0], asyncio.CancelledError)
