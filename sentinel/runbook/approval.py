"""Approval mode (``mode: approve``): an automatic run pages its plan with the exact
command and API call that approve or reject it, and waits, holding its target's lock,
until a person decides or ``approve_within`` passes (then it pages again and acts on
nothing). The decision is a row of the run (phase ``approval``) and the API audits it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from sentinel.runbook.context import RunContext
from sentinel.runbook.deadline import timed
from sentinel.runbook.errors import StepTimeout
from sentinel.runbook.guards import Verdict
from sentinel.runbook.records import Ports, RunRequest
from sentinel.runbook.reporting import RunReporter
from sentinel.runbook.status import Guard, RunStatus, StepStatus
from sentinel.runbook.targets import target_key
from sentinel.runbook.templating import TemplateFailure, render

log = structlog.get_logger(__name__)


class Approvals:
    """Runs waiting for a person's decision, by run id; one per executor."""

    def __init__(self, ports: Ports, report: RunReporter) -> None:
        self.p = ports
        self.report = report
        self.pending: dict[str, asyncio.Future[tuple[bool, str]]] = {}

    def decide(self, run_id: str, approve: bool, actor: str) -> bool:
        """Approve or reject a waiting run; False when no run by that id waits."""
        waiting = self.pending.get(run_id)
        if waiting is None or waiting.done():
            return False
        waiting.set_result((approve, actor))
        return True

    async def wait(self, req: RunRequest, run_id: str, ctx: RunContext) -> Verdict | None:
        """Page the plan and wait; None once approved, else why the run stops here."""
        h, now = self.p.history, self.p.clock.now
        pb = req.loaded.playbook
        plan = plan_of(req, ctx)
        deadline = now() + pb.approve_within
        h.set_status(
            run_id, RunStatus.AWAITING_APPROVAL, f"awaiting approval until {_utc(deadline)}"
        )
        row = h.start_step(
            run_id,
            "approval",
            "approval",
            "approval",
            StepStatus.STARTED,
            False,
            {"plan": plan},
            now(),
        )
        commands = {
            "approve": f"sentinel runs approve {run_id}",
            "reject": f"sentinel runs reject {run_id}",
            "approve_api": f"POST /v1/runs/{run_id}/approve",
            "reject_api": f"POST /v1/runs/{run_id}/reject",
        }
        steps = "; ".join(f"{s['name']}: {s['action']} {s['with']}" for s in plan)
        text = (
            f"{pb.name} wants to act on {target_key(self.p.pod, req.target)} and waits for "
            f"approval until {_utc(deadline)}. Plan: {steps}. Approve: `{commands['approve']}` "
            f"(or {commands['approve_api']}); reject: `{commands['reject']}` "
            f"(or {commands['reject_api']})."
        )
        waiting: asyncio.Future[tuple[bool, str]] = asyncio.get_running_loop().create_future()
        self.pending[run_id] = waiting
        try:
            await self.report.page(req, run_id, text, {"plan": plan, **commands}, False)
            approved, actor = await timed(self.p.clock, waiting, pb.approve_within)
        except StepTimeout:
            why = f"no decision within {pb.approve_within:g} s: nothing was changed"
            h.finish_step(row, StepStatus.FAILED, now(), reason=why)
            verdict = Verdict(RunStatus.REJECTED, f"approval: {why}", True, Guard.APPROVAL)
            await self.report.page(req, run_id, f"{pb.name}: {verdict.reason}", {}, False)
            return verdict
        finally:
            self.pending.pop(run_id, None)
        if not approved:
            why = f"rejected by {actor}: nothing was changed"
            h.finish_step(row, StepStatus.BLOCKED, now(), {"decided_by": actor}, why)
            return Verdict(RunStatus.REJECTED, why, guard=Guard.APPROVAL)
        h.finish_step(
            row, StepStatus.SUCCEEDED, now(), {"decided_by": actor}, f"approved by {actor}"
        )
        h.set_status(run_id, RunStatus.RUNNING, f"approved by {actor}")
        log.info("run_approved", run_id=run_id, actor=actor)
        return None


def plan_of(req: RunRequest, ctx: RunContext) -> list[dict[str, Any]]:
    """The steps as they would run now (parameters that need earlier steps' output are
    rendered when the step runs, and say so)."""
    data = ctx.template()
    out = []
    for step in req.loaded.playbook.steps:
        try:
            params: Any = render(step.with_, data)
        except TemplateFailure:
            params = "(rendered when the step runs)"
        out.append({"name": step.name, "action": step.action, "with": params})
    return out


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
