"""A run a person cancelled (``sentinel runs cancel ID``): what was under way is marked
cancelled, and every step it had applied is rolled back, newest first, through the same
rollback a failed verification uses (so it is timed, recorded and pages on failure).
"""

from __future__ import annotations

import structlog

from sentinel.runbook.context import RunContext
from sentinel.runbook.records import Ports, RunRequest
from sentinel.runbook.reporting import RunReporter
from sentinel.runbook.rollback import StepRollback
from sentinel.runbook.status import RunStatus, StepStatus

log = structlog.get_logger(__name__)

_ACTING_PHASES = ("step", "on_failure")


class CancelledRun:
    """Winds a cancelled run back; one per executor."""

    def __init__(self, ports: Ports, report: RunReporter, rollback: StepRollback) -> None:
        self.p = ports
        self.report = report
        self.rollback = rollback

    async def cancelled(
        self, req: RunRequest, run_id: str, ctx: RunContext, actor: str, dry: bool
    ) -> tuple[RunStatus, str]:
        """Record the cancel, undo the applied steps; the run's status and reason."""
        h, now = self.p.history, self.p.clock.now
        rows = h.steps(run_id)
        for row in rows:
            if row["status"] == StepStatus.STARTED:
                why = f"cancelled by {actor} while under way; it may have half-happened"
                h.finish_step(row["id"], StepStatus.CANCELLED, now(), row["output"], why)
        undone_before = {r["name"] for r in rows if r["phase"] == "rollback"}
        applied = [
            r
            for r in rows
            if r["phase"] in _ACTING_PHASES
            and r["mutating"]
            and r["status"] == StepStatus.SUCCEEDED
            and r["name"] not in undone_before
        ]
        pb = req.loaded.playbook
        by_name = {s.name: s for s in [*pb.steps, *pb.on_failure]}
        for row in reversed(applied):
            step = by_name.get(row["name"])
            if step is not None and not dry:
                await self.rollback.undo(req, run_id, ctx, step, row["params"], row["output"])
        self._release_leases(run_id, actor)
        log.warning("run_cancelled", run_id=run_id, actor=actor, applied=len(applied))
        return RunStatus.CANCELLED, self._reason(run_id, actor, [r["name"] for r in applied])

    def _reason(self, run_id: str, actor: str, applied: list[str]) -> str:
        if not applied:
            return f"cancelled by {actor}; no step had changed anything"
        rollbacks = [r for r in self.p.history.steps(run_id) if r["phase"] == "rollback"]
        failed = [r["name"] for r in rollbacks if r["status"] == StepStatus.FAILED]
        done = [r["name"] for r in rollbacks if r["status"] == StepStatus.ROLLED_BACK]
        reason = f"cancelled by {actor}; rolled back: {', '.join(done) or 'none'}"
        if failed:
            reason += f"; rollback FAILED for: {', '.join(failed)} (a human was paged)"
        return reason

    def _release_leases(self, run_id: str, actor: str) -> None:
        """A change the cancel rolled back is no longer held: its lease has nothing to restore."""
        now = self.p.clock.now()
        for lease in self.p.history.leases():
            if lease["run_id"] == run_id:
                note = f"run cancelled by {actor}; its change was rolled back"
                self.p.history.update_lease(lease["id"], now, state="released", note=note)
