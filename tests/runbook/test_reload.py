"""Hot reload of playbooks: a changed folder is re-read all or nothing, on a poll or SIGHUP."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

from prometheus_client import CollectorRegistry

from sentinel.base.clock import FakeClock
from sentinel.config import Config
from sentinel.daemon import Daemon, Wiring
from sentinel.runbook.engine import Engine
from sentinel.runbook.reload import PlaybookWatcher
from sentinel.runbook.settings import RunbookSettings

PLAYBOOK = """\
name: {name}
triggers: [{{kinds: [latency_spike]}}]
steps:
  - {{name: note, action: notify.slack, with: {{text: "{{{{ target.model }}}} is slow"}}}}
"""


def _write(folder: Path, name: str, text: str | None = None) -> None:
    (folder / f"{name}.yaml").write_text(text or PLAYBOOK.format(name=name), encoding="utf-8")


def _engine(folder: Path, conn: sqlite3.Connection, registry: CollectorRegistry) -> Engine:
    return Engine(
        settings=RunbookSettings(dirs=[folder]), conn=conn, clock=FakeClock(), registry=registry
    )


def test_an_added_playbook_is_picked_up_by_the_watcher(
    tmp_path: Path, conn: sqlite3.Connection
) -> None:
    """A new file in the folder is seen on the next look and loaded."""
    _write(tmp_path, "first")
    engine = _engine(tmp_path, conn, CollectorRegistry())
    watcher = PlaybookWatcher(
        [tmp_path], lambda: engine.reload(all_or_nothing=True), FakeClock(), 10.0
    )
    assert (False, ["first"]) == (watcher.check(), sorted(engine.playbooks))
    _write(tmp_path, "second")
    assert (True, ["first", "second"]) == (watcher.check(), sorted(engine.playbooks))


def test_a_reload_with_a_broken_file_keeps_every_playbook_as_it_was(
    tmp_path: Path, conn: sqlite3.Connection
) -> None:
    """All or nothing: one invalid file keeps the running set, counts the problem; a fix
    reloads and clears it."""
    _write(tmp_path, "first")
    registry = CollectorRegistry()
    engine = _engine(tmp_path, conn, registry)
    _write(
        tmp_path, "first", PLAYBOOK.format(name="first").replace("latency_spike", "latency_spik")
    )
    _write(tmp_path, "second")
    problems = engine.reload(all_or_nothing=True)
    assert (["first"], 1.0) == (
        sorted(engine.playbooks),
        registry.get_sample_value("sentinel_playbooks_invalid"),
    )
    assert "latency_spik" in str(problems[0])
    _write(tmp_path, "first")
    engine.reload(all_or_nothing=True)
    assert (["first", "second"], 0.0) == (
        sorted(engine.playbooks),
        registry.get_sample_value("sentinel_playbooks_invalid"),
    )


async def test_watcher_polls_on_the_injected_clock(tmp_path: Path) -> None:
    """The watcher looks every interval of the (fake) clock and reloads once per change."""
    clock = FakeClock()
    reloads: list[int] = []
    watcher = PlaybookWatcher([tmp_path], lambda: reloads.append(1), clock, 10.0)
    task = asyncio.create_task(watcher.run())
    try:
        _write(tmp_path, "first")
        await clock.advance(10.0)
        await clock.advance(10.0)
        assert 1 == len(reloads)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_sighup_asks_for_a_reload() -> None:
    """The daemon's SIGHUP handler calls the wiring's reload (and survives one that raises)."""
    calls: list[str] = []

    def reload() -> None:
        calls.append("reload")
        raise RuntimeError("a reload that fails must not stop the daemon")

    async def nothing(*_: object) -> None:
        return None

    wiring = Wiring(sink=nothing, probes=[], tick=nothing, reload=reload)
    daemon = Daemon(Config(), wiring, clock=FakeClock(), serve_metrics=False)
    daemon.install_signal_handlers()
    loop = asyncio.get_running_loop()
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(100):
            if calls:
                break
            await asyncio.sleep(0.01)
        assert ["reload"] == calls
    finally:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
