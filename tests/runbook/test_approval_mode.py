"""mode: approve on the fake clock: the plan is paged with the exact commands, and the run
waits for a person's decision or its deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from runbook_standins import DIGITS_CONFIG, Bed, drive, incident

from sentinel.runbook.engine import Engine
from sentinel.runbook.schema import LoadedPlaybook
from sentinel.runbook.status import Guard
from sentinel.vocabulary.incidents import IncidentStatus
from sentinel.vocabulary.notices import IncidentChanged, PageRequest

Loader = Callable[[str], LoadedPlaybook]

APPROVE = """
name: halve-approved
mode: approve
approve_within: 10m
triggers: [{kinds: [latency_spike]}]
steps:
  - name: halve
    action: triton.load_model
    with: {model: "{{ target.model }}", patch: {max_batch_size: 16}}
"""


async def _waiting(bed: Bed, engine: Engine) -> tuple[asyncio.Task[Any], str]:
    """Start the automatic run; the id of the run once it waits for a decision."""
    task = asyncio.ensure_future(engine.consider(incident("latency_spike", bed.clock.now())))
    for _ in range(100):
        await asyncio.sleep(0)
        if engine.executor.approvals.pending:
            [run_id] = engine.executor.approvals.pending
            return task, run_id
    raise AssertionError("the run never waited for approval")


async def test_plan_is_paged_with_the_commands_and_approval_runs_it(
    bed: Bed, write_playbook: Loader
) -> None:
    """The page names the plan and `sentinel runs approve ID`; approving lets the step act."""
    engine = bed.engine([write_playbook(APPROVE)])
    task, run_id = await _waiting(bed, engine)
    assert "awaiting_approval" == engine.history.run(run_id)["status"]  # type: ignore[index]
    [page] = bed.teller.of(PageRequest)
    assert f"`sentinel runs approve {run_id}`" in page.reason
    assert f"POST /v1/runs/{run_id}/reject" in page.reason
    assert [
        {
            "name": "halve",
            "action": "triton.load_model",
            "with": {"model": "digits", "patch": {"max_batch_size": 16}},
        }
    ] == page.evidence["plan"]
    assert [] == bed.triton.mutations()
    assert engine.decide(run_id, True, "alice")
    [result] = await asyncio.wait_for(task, timeout=30)
    assert "succeeded" == result.status
    assert 16 == bed.triton.configs["digits"]["max_batch_size"]
    approval = result.steps[0]
    assert ("approval", "succeeded", {"decided_by": "alice"}) == (
        approval["phase"],
        approval["status"],
        approval["output"],
    )


async def test_rejection_changes_nothing(bed: Bed, write_playbook: Loader) -> None:
    """A rejected run ends rejected by the approval guard and calls no action."""
    engine = bed.engine([write_playbook(APPROVE)])
    task, run_id = await _waiting(bed, engine)
    assert engine.decide(run_id, False, "bob")
    [result] = await asyncio.wait_for(task, timeout=30)
    assert ("rejected", Guard.APPROVAL) == (result.status, result.refused_by)
    assert "rejected by bob: nothing was changed" == result.reason
    assert [] == bed.triton.mutations()
    assert not engine.decide(run_id, True, "bob")  # decided once


async def test_no_decision_by_the_deadline_pages_and_changes_nothing(
    bed: Bed, write_playbook: Loader
) -> None:
    """After approve_within the run gives up, pages that it did, and acts on nothing."""
    engine = bed.engine([write_playbook(APPROVE)])
    task, _ = await _waiting(bed, engine)
    start = bed.clock.monotonic()
    [result] = await drive(bed.clock, task, step=10.0)
    assert 600 <= bed.clock.monotonic() - start <= 620
    assert ("rejected", Guard.APPROVAL) == (result.status, result.refused_by)
    assert "no decision within 600 s" in result.reason
    assert 2 == len(bed.teller.of(PageRequest))
    assert DIGITS_CONFIG["max_batch_size"] == bed.triton.configs["digits"]["max_batch_size"]


async def test_a_persons_manual_run_needs_no_approval(bed: Bed, write_playbook: Loader) -> None:
    """Running an approve-mode playbook by hand is the approval: it acts at once."""
    engine = bed.engine([write_playbook(APPROVE)])
    result = await engine.run_manual("halve-approved", {"model": "digits"}, actor="alice")
    assert "succeeded" == result.status
    assert [] == bed.teller.of(PageRequest)


async def test_finding_cleared_while_waiting_is_not_acted_on(
    bed: Bed, write_playbook: Loader
) -> None:
    """Approved after the incident resolved: the run refuses as cleared, nothing changes."""
    engine = bed.engine([write_playbook(APPROVE)])
    task, run_id = await _waiting(bed, engine)
    resolved = incident("latency_spike", bed.clock.now(), status=IncidentStatus.RESOLVED)
    await engine.handle(IncidentChanged(resolved, "resolved"))  # while a person decided
    assert engine.decide(run_id, True, "alice")
    [result] = await asyncio.wait_for(task, timeout=30)
    assert Guard.CLEARED == result.refused_by
    assert [] == bed.triton.mutations()


async def test_cancel_while_waiting_for_approval(bed: Bed, write_playbook: Loader) -> None:
    """A run cancelled while it waits ends cancelled; its approval row says so; no action."""
    engine = bed.engine([write_playbook(APPROVE)])
    task, run_id = await _waiting(bed, engine)
    assert engine.cancel(run_id, "carol")
    [result] = await asyncio.wait_for(task, timeout=30)
    assert ("cancelled", "cancelled by carol; no step had changed anything") == (
        result.status,
        result.reason,
    )
    [approval] = result.steps
    assert ("approval", "cancelled") == (approval["phase"], approval["status"])
    assert not engine.decide(run_id, True, "alice")
    assert [] == bed.triton.mutations()


async def test_a_run_awaiting_approval_at_shutdown_is_marked_interrupted(
    bed: Bed, write_playbook: Loader
) -> None:
    """Stopping the daemon mid-wait leaves the run for recovery, which marks it interrupted."""
    engine = bed.engine([write_playbook(APPROVE)])
    task, run_id = await _waiting(bed, engine)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [run_id] == engine.recover()
    assert "interrupted" == engine.history.run(run_id)["status"]  # type: ignore[index]
    assert engine.history.lock_holder("pod-a/digits") is None
