"""Shutdown is bounded: a task or closer that will not stop is named, not waited on."""

from __future__ import annotations

import asyncio
import time

from structlog.testing import capture_logs

from sentinel.config import Config
from sentinel.daemon import Daemon, Wiring
from sentinel.vocabulary.samples import Sample


async def _sink(sample: Sample) -> None:
    return None


async def _tick(now: float) -> None:
    return None


async def test_a_task_and_a_closer_that_will_not_stop_do_not_hold_up_shutdown() -> None:
    """SIGTERM's stop ends run() within the stop timeout even when a service ignores its
    cancellation and a closer hangs; both are logged by name, and later closers still run."""
    release = asyncio.Event()
    closed: list[str] = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await release.wait()  # ignores the cancellation until the test lets it go

    async def hangs() -> None:
        await asyncio.sleep(3600)

    async def closes() -> None:
        closed.append("closes")

    wiring = Wiring(sink=_sink, probes=[], tick=_tick, services=[stubborn], closers=[closes, hangs])
    config = Config.model_validate({"gpu": {"source": "off"}})
    daemon = Daemon(config, wiring, serve_metrics=False, stop_timeout_s=0.2)
    with capture_logs() as logs:
        run = asyncio.create_task(daemon.run())
        await daemon.started.wait()
        started = time.monotonic()
        daemon.request_stop()
        await asyncio.wait_for(run, 5)
        took = time.monotonic() - started
    release.set()
    await asyncio.sleep(0.01)  # the released task ends
    events = {e["event"]: e for e in logs}
    assert took < 2
    assert ("stubborn", "hangs") == (
        events["task_did_not_stop"]["task"],
        events["close_timed_out"]["closer"].rsplit(".", 1)[-1],
    )
    assert (["closes"], ["stubborn"]) == (closed, events["sentinel_stopped"]["left_behind"])
