"""One step of a run: ``if:``, gates, the cause refusals, rendering, dry run, the fleet
guard, the breaker, then the action with its timeout and transient-only retries, and
verification by canary (a failed check rolls the step back).

With ``rollback.py`` this is the only code that calls an action's ``run`` or ``undo``
(``tests/runbook/test_single_path.py`` keeps it so).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from sentinel.base.errors import is_retryable
from sentinel.runbook.actions import REGISTRY
from sentinel.runbook.actions.base import ActionContext, classify
from sentinel.runbook.context import RunContext, StepState
from sentinel.runbook.deadline import timed
from sentinel.runbook.errors import ActionError, StepTimeout
from sentinel.runbook.guards import Verdict, cause_refusal, first_gate
from sentinel.runbook.records import Abort, Ports, RunRequest
from sentinel.runbook.reporting import RunReporter
from sentinel.runbook.rollback import StepRollback
from sentinel.runbook.schema import Step
from sentinel.runbook.status import Guard, RunStatus, StepStatus
from sentinel.runbook.targets import target_key
from sentinel.runbook.templating import TemplateFailure, condition, render
from sentinel.runbook.verify import baseline_p99, verify

log = structlog.get_logger(__name__)


class StepRunner:
    """Runs one step of a run and records it; one per executor."""

    def __init__(self, ports: Ports, report: RunReporter) -> None:
        self.p = ports
        self.report = report
        self.rollback = StepRollback(ports, report)

    async def run(
        self, req: RunRequest, run_id: str, ctx: RunContext, step: Step, phase: str, dry: bool
    ) -> bool:
        """Run one step; False when it failed. Blocked or skipped steps are not failures."""
        h, now = self.p.history, self.p.clock.now
        action = REGISTRY[step.action]
        mutating = action.spec.mutating
        state = ctx.step(step.name)
        data = ctx.template()
        if step.if_ is not None:
            try:
                go = condition(step.if_, data)
            except TemplateFailure as exc:
                if dry:
                    go = True  # earlier outcomes are unknown in a plan: show the step
                else:
                    return self._fail(run_id, step, phase, state, f"if: {exc}")
            if not go:
                state.status = StepStatus.SKIPPED
                h.start_step(
                    run_id,
                    phase,
                    step.name,
                    step.action,
                    StepStatus.SKIPPED,
                    mutating,
                    {},
                    now(),
                    f"if: {step.if_} is false",
                )
                return True
        gate = first_gate(step.blocked_if, data)
        if gate is not None:
            return await self._blocked(req, run_id, step, phase, state, gate, dry)
        refusal = cause_refusal(step, mutating, ctx.facts)
        if refusal is not None:
            # the executor's default, not the playbook's: the run stops here and pages once
            await self._blocked(req, run_id, step, phase, state, refusal, dry, stop=True)
        try:
            params = render(step.with_, data)
        except TemplateFailure as exc:
            return self._fail(run_id, step, phase, state, f"with: {exc}")
        if dry:
            state.status = StepStatus.PLANNED
            note = "would run" + (
                f", then verify {step.verify.model_dump()}" if step.verify else ""
            )
            h.start_step(
                run_id,
                phase,
                step.name,
                step.action,
                StepStatus.PLANNED,
                mutating,
                params,
                now(),
                note,
            )
            log.info(
                "step_planned", run_id=run_id, step=step.name, action=step.action, params=params
            )
            return True
        if mutating:
            self._check_breaker(run_id)
        if action.spec.disruptive:
            fleet_ok = (
                await self.p.fleet.acquire(step.action, target_key(self.p.pod, req.target))
                if self.p.fleet
                else True
            )
            if not fleet_ok:
                verdict = Verdict(
                    RunStatus.BLOCKED,
                    "fleet guard refused: too many replicas disrupted",
                    True,
                    Guard.FLEET,
                )
                return await self._blocked(req, run_id, step, phase, state, verdict, dry)
        actx = self.p.action_context(req, run_id, step.name)
        step_id = h.start_step(
            run_id, phase, step.name, step.action, StepStatus.STARTED, mutating, params, now()
        )
        await self.report.tell(
            req, run_id, step.name, "started", f"{step.action} {params}", {}, dry
        )
        try:
            output, attempts = await self._call(step, actx, params)
        except ActionError as exc:
            self.report.count_action(step.action, "failed")
            state.status, state.error = StepStatus.FAILED, str(exc)
            h.finish_step(step_id, StepStatus.FAILED, now(), reason=str(exc))
            await self.report.tell(req, run_id, step.name, "failed", str(exc), {}, dry)
            return False
        self.report.count_action(step.action, "succeeded")
        state.status, state.output = StepStatus.SUCCEEDED, output
        state.paged = step.action == "pagerduty.trigger"
        h.finish_step(step_id, StepStatus.SUCCEEDED, now(), output, attempts=attempts)
        await self.report.tell(
            req, run_id, step.name, "succeeded", f"{step.action} done", output, dry
        )
        if step.verify is None:
            return True
        return await self._verify(req, run_id, ctx, step, phase, state, params, output)

    async def _call(
        self, step: Step, actx: ActionContext, params: dict[str, Any]
    ) -> tuple[dict[str, Any], int]:
        """Timeout, and retries for transient errors only, with backoff on the clock."""
        action = REGISTRY[step.action]
        retries = step.retry.count if step.retry else 0
        delay = step.retry.backoff if step.retry else 0.0
        attempt = 0
        while True:
            attempt += 1
            if action.spec.side_effects and self.p.dry_everywhere():
                raise ActionError("refused: a dry run never calls an action with side effects")
            try:
                out = await timed(self.p.clock, action.run(actx, params), step.timeout)
                return out, attempt
            except StepTimeout:
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = classify(exc)
                if not is_retryable(err) or attempt > retries:
                    raise err from exc
                log.warning("step_retry", step=step.name, attempt=attempt, error=str(err))
                await self.p.clock.sleep(delay)
                delay *= step.retry.factor if step.retry else 1.0

    async def _verify(
        self,
        req: RunRequest,
        run_id: str,
        ctx: RunContext,
        step: Step,
        phase: str,
        state: StepState,
        params: dict[str, Any],
        output: dict[str, Any],
    ) -> bool:
        assert step.verify is not None
        h, now = self.p.history, self.p.clock.now
        model = str(params.get("model") or req.target.get("model") or "")
        vid = h.start_step(
            run_id, "verify", step.name, "canary.verify", StepStatus.STARTED, False, {}, now()
        )
        evidence: dict[str, Any]
        if self.p.canary is None:
            ok, evidence = False, {"failed_because": ["no canary runner configured"]}
        else:
            baseline = self._baseline(step, ctx, req, model)
            ok, evidence = await verify(
                step.verify,
                canary=self.p.canary,
                clock=self.p.clock,
                model=model,
                baseline=baseline,
                interval=self.p.settings.canary_interval_s,
            )
        state.verified = ok
        state.verification = evidence
        h.finish_step(vid, StepStatus.VERIFIED if ok else StepStatus.VERIFY_FAILED, now(), evidence)
        text = f"verification of {step.name} {'passed' if ok else 'failed'}"
        await self.report.tell(
            req, run_id, step.name, "verified" if ok else "failed", text, evidence, False
        )
        if ok:
            if step.restore_after is not None:
                self.rollback.add_lease(
                    req, run_id, step, output, model, evidence.get("baseline_p99_s")
                )
            return True
        await self.rollback.undo(req, run_id, ctx, step, params, output)
        state.status = StepStatus.ROLLED_BACK
        return True  # a failed verification is an answer, not an error: the ladder goes on

    def _baseline(self, step: Step, ctx: RunContext, req: RunRequest, model: str) -> float | None:
        assert step.verify is not None
        raw = step.verify.baseline_p99_s
        if raw is not None:
            try:
                value = render(raw, ctx.template())
                return float(value) if value not in (None, "") else None
            except (TemplateFailure, TypeError, ValueError):
                log.warning("baseline_unreadable", step=step.name, template=str(raw))
        return baseline_p99(self.p.facts, model, req.incident.started_at)

    def _check_breaker(self, run_id: str) -> None:
        s, now = self.p.settings, self.p.clock.now()
        # a person's reset starts a fresh count: actions before it do not re-trip the breaker
        since = max(now - s.breaker_window_s, self.p.history.breaker().get("reset_at") or 0.0)
        used = self.p.history.mutating_actions_since(since)
        if used >= s.breaker_max_actions:
            reason = (
                f"circuit breaker opened: {used} actions in {s.breaker_window_s:g} s "
                f"(max {s.breaker_max_actions}); automation stopped until `sentinel breaker reset`"
            )
            self.p.history.open_breaker(now, reason)
            if self.p.metrics is not None:
                self.p.metrics.breaker_open.set(1)
            log.warning("breaker_opened", run_id=run_id, actions=used)
            raise Abort(Verdict(RunStatus.BLOCKED, reason, page=True, guard=Guard.BREAKER))

    async def _blocked(
        self,
        req: RunRequest,
        run_id: str,
        step: Step,
        phase: str,
        state: StepState,
        verdict: Verdict,
        dry: bool,
        stop: bool = False,
    ) -> bool:
        """Record a refused step; page, or (``stop``) end the run, which pages once."""
        state.status, state.blocked = StepStatus.BLOCKED, verdict.reason
        if self.p.metrics is not None:
            self.p.metrics.blocks.labels(req.loaded.playbook.name, verdict.guard or "").inc()
        self.p.history.start_step(
            run_id,
            phase,
            step.name,
            step.action,
            StepStatus.BLOCKED,
            False,
            {},
            self.p.clock.now(),
            verdict.reason,
        )
        if stop:
            raise Abort(verdict)
        reason = f"skipped {step.name}: {verdict.reason}"
        await self.report.page(req, run_id, reason, {}, dry, step=step.name)
        return True

    def _fail(self, run_id: str, step: Step, phase: str, state: StepState, why: str) -> bool:
        state.status, state.error = StepStatus.FAILED, why
        self.p.history.start_step(
            run_id,
            phase,
            step.name,
            step.action,
            StepStatus.FAILED,
            False,
            {},
            self.p.clock.now(),
            why,
        )
        log.warning("step_failed", run_id=run_id, step=step.name, reason=why)
        return False
