"""The ways back from a step: undo it now (its own undo, or the playbook's rollback
action) when its fix did not verify, or a lease that restores it later
(``restore_after``) once the model has been healthy long enough.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

import structlog

from sentinel.runbook.actions import REGISTRY
from sentinel.runbook.context import RunContext
from sentinel.runbook.deadline import timed
from sentinel.runbook.errors import ActionError
from sentinel.runbook.records import Ports, RunRequest
from sentinel.runbook.reporting import RunReporter
from sentinel.runbook.schema import Rollback, Step
from sentinel.runbook.status import StepStatus
from sentinel.runbook.targets import target_key
from sentinel.runbook.templating import TemplateFailure, render

log = structlog.get_logger(__name__)


class StepRollback:
    """Puts back what a step changed, and records every attempt."""

    def __init__(self, ports: Ports, report: RunReporter) -> None:
        self.p = ports
        self.report = report

    async def undo(
        self,
        req: RunRequest,
        run_id: str,
        ctx: RunContext,
        step: Step,
        params: dict[str, Any],
        output: dict[str, Any],
    ) -> None:
        """Undo a step whose fix did not verify; a failed undo pages."""
        h, now = self.p.history, self.p.clock.now
        actx = self.p.action_context(req, run_id, step.name)
        if step.rollback == "none":
            h.start_step(
                run_id,
                "rollback",
                step.name,
                step.action,
                StepStatus.SKIPPED,
                False,
                {},
                now(),
                "rollback: none (this step cannot be undone)",
            )
            return
        if isinstance(step.rollback, Rollback):
            rb = step.rollback
            try:
                rb_params = render(rb.with_, ctx.template(output=output))
            except TemplateFailure as exc:
                h.start_step(
                    run_id,
                    "rollback",
                    step.name,
                    rb.action,
                    StepStatus.FAILED,
                    True,
                    {},
                    now(),
                    str(exc),
                )
                await self.report.page(
                    req, run_id, f"rollback of {step.name} failed: {exc}", {}, False
                )
                return
            rid = h.start_step(
                run_id, "rollback", step.name, rb.action, StepStatus.STARTED, True, rb_params, now()
            )
            rb_action = REGISTRY[rb.action]

            def call() -> Awaitable[Any]:
                return rb_action.run(actx, rb_params)

        else:
            rid = h.start_step(
                run_id, "rollback", step.name, step.action, StepStatus.STARTED, True, params, now()
            )
            action = REGISTRY[step.action]

            def call() -> Awaitable[Any]:
                return action.undo(actx, params, output)

        try:
            if self.p.dry_everywhere():
                raise ActionError("refused: a dry run never calls an action with side effects")
            await timed(self.p.clock, call(), step.timeout)
        except Exception as exc:
            h.finish_step(rid, StepStatus.FAILED, now(), reason=str(exc))
            await self.report.page(req, run_id, f"rollback of {step.name} failed: {exc}", {}, False)
            return
        h.finish_step(rid, StepStatus.ROLLED_BACK, now())
        await self.report.tell(
            req, run_id, step.name, "rolled_back", f"{step.name} rolled back", {}, False
        )

    def add_lease(
        self,
        req: RunRequest,
        run_id: str,
        step: Step,
        output: dict[str, Any],
        model: str,
        baseline: float | None,
    ) -> None:
        """A verified degradation (``restore_after``): the lease keeper restores it later."""
        if "previous" not in output or "applied" not in output:
            log.warning("lease_without_snapshot", step=step.name)
            return
        assert step.restore_after is not None
        self.p.history.add_lease(
            {
                "id": uuid.uuid4().hex[:12],
                "run_id": run_id,
                "playbook": req.loaded.playbook.name,
                "step": step.name,
                "target_key": target_key(self.p.pod, req.target),
                "model": model,
                "original": output["previous"],
                "degraded": {"config": output["applied"], "patch": output.get("patch", {})},
                "verify": (
                    {**step.verify.model_dump(), "baseline_p99_s": baseline}
                    if step.verify
                    else None
                ),
                "restore_after": step.restore_after,
                "healthy_since": self.p.clock.now(),
                "created_at": self.p.clock.now(),
            }
        )
