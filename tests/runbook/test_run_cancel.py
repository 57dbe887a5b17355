"""Cancelling a run under way, on the fake clock: the applied steps are rolled back and the
run ends cancelled; stopping the daemon still leaves a run for recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from runbook_standins import DIGITS_CONFIG, Bed, incident

from sentinel.runbook.engine import Engine
from sentinel.runbook.records import RunResult
from sentinel.runbook.schema import LoadedPlaybook

Loader = Callable[[str], LoadedPlaybook]

# a change, then a long wait: the cancel lands while the wait is under way
SLOW = """
name: slow-fix
steps:
  - name: halve
    action: triton.load_model
    with: {model: digits, patch: {max_batch_size: 16}}
  - name: settle
    action: wait
    with: {seconds: 600}
  - name: never
    action: triton.load_model
    with: {model: digits, patch: {max_batch_size: 8}}
"""


async def _until_waiting(bed: Bed, engine: Engine) -> str:
    """Let the run reach its wait; the id of the run under way."""
    for _ in range(200):
        await asyncio.sleep(0)
        await bed.clock.advance(1.0)
        if engine.executor.running:
            [run_id] = engine.executor.running
            rows = engine.history.steps(run_id)
            if any(r["name"] == "settle" for r in rows):
                return run_id
    raise AssertionError("the run never reached its wait")


async def _start(bed: Bed, write_playbook: Loader) -> tuple[Engine, asyncio.Task[RunResult], str]:
    engine = bed.engine([write_playbook(SLOW)])
    task = asyncio.ensure_future(engine.run_manual("slow-fix", {"model": "digits"}))
    return engine, task, await _until_waiting(bed, engine)


async def test_cancel_rolls_back_applied_steps_and_records_cancelled(
    bed: Bed, write_playbook: Loader
) -> None:
    """The applied change is undone, the waiting step is marked cancelled, nothing after runs."""
    engine, task, run_id = await _start(bed, write_playbook)
    assert 16 == bed.triton.configs["digits"]["max_batch_size"]
    assert engine.cancel(run_id, "alice")
    result = await asyncio.wait_for(task, timeout=30)
    assert "cancelled" == result.status
    assert "cancelled by alice; rolled back: halve" == result.reason
    assert DIGITS_CONFIG["max_batch_size"] == bed.triton.configs["digits"]["max_batch_size"]
    steps = [(s["phase"], s["name"], s["status"]) for s in engine.history.steps(run_id)]
    assert [
        ("step", "halve", "succeeded"),
        ("step", "settle", "cancelled"),
        ("rollback", "halve", "rolled_back"),
    ] == steps
    assert "cancelled" == engine.history.run(run_id)["status"]  # type: ignore[index]
    assert engine.history.lock_holder("pod-a/digits") is None


async def test_cancel_of_an_unknown_or_finished_run_is_refused(
    bed: Bed, write_playbook: Loader
) -> None:
    """Only a run under way can be cancelled; a second cancel of the same run is refused."""
    engine, task, run_id = await _start(bed, write_playbook)
    assert not engine.cancel("no-such-run", "alice")
    assert engine.cancel(run_id, "alice")
    await asyncio.wait_for(task, timeout=30)
    assert not engine.cancel(run_id, "alice")


async def test_cancel_of_an_automatic_run_ends_its_trigger_task(
    bed: Bed, write_playbook: Loader
) -> None:
    """An automatic run cancelled mid-way ends cancelled, and its incident fires again."""
    lp = write_playbook(
        SLOW.replace("name: slow-fix", "name: slow-fix\ntriggers: [{kinds: [backlog]}]", 1)
    )
    engine = bed.engine([lp])
    inc = incident("backlog", bed.clock.now())
    task = asyncio.ensure_future(engine.consider(inc))
    run_id = await _until_waiting(bed, engine)
    assert engine.cancel(run_id, "bob")
    [result] = await asyncio.wait_for(task, timeout=30)
    assert "cancelled" == result.status
    assert [inc.id] == bed.marker.refired


async def test_stopping_the_daemon_is_not_a_cancel(bed: Bed, write_playbook: Loader) -> None:
    """Cancelling the task itself (shutdown) leaves the run 'running' for recovery, no rollback."""
    engine, task, run_id = await _start(bed, write_playbook)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "running" == engine.history.run(run_id)["status"]  # type: ignore[index]
    assert 16 == bed.triton.configs["digits"]["max_batch_size"]
    assert [run_id] == engine.recover()
