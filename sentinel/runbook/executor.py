"""The executor: runs one playbook for one target, and owns every safety rule.

Guards, in order: mode, operator pauses (``pauses.py``), freshness (cleared/stale),
``when:``, the circuit breaker, cooldown, budget (then page), the playbook's
``blocked_if`` gates, the target lock, and -- just before the first step -- whether the
finding has cleared meanwhile, and with ``mode: approve`` a person's decision
(``approval.py``). Then steps: ``if:``, step gates, the cause refusals (by default no
changing step acts on a hardware cause, a lost GPU or foreign memory; a step opts out
with ``allow_causes`` + ``because``), rendering, dry-run (an action that declares side
effects is never called), the fleet guard for disruptive actions, the breaker again,
timeout, transient-only retries with backoff, verification by canary, rollback, and a
lease for ``restore_after``. Lease restores and re-applies (``leases.py``) are runs of
this executor too, so every change passes here.
Every decision is a row in SQLite before anything is called.

This module is the run (its guards, its steps in order, its outcome); one step is
in ``steps.py``, the ways back in ``rollback.py`` (and ``cancel.py`` for a run a person
cancelled), notices and metrics in ``reporting.py``, and the run's data in ``records.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import structlog

from sentinel.runbook.approval import Approvals
from sentinel.runbook.cancel import CancelledRun
from sentinel.runbook.context import RunContext, build_context
from sentinel.runbook.guards import Verdict, cleared, first_gate, freshness, paused
from sentinel.runbook.pauses import Pause
from sentinel.runbook.records import LOCKED, Abort, Ports, RunRequest, RunResult
from sentinel.runbook.reporting import RunReporter
from sentinel.runbook.status import Guard, RunStatus, StepStatus
from sentinel.runbook.steps import StepRunner
from sentinel.runbook.targets import target_key
from sentinel.runbook.templating import TemplateFailure, condition

log = structlog.get_logger(__name__)

_PAGED_KEPT = 4096


class Executor:
    """Runs playbooks; one instance per daemon (stateless between runs but for SQLite)."""

    def __init__(self, ports: Ports) -> None:
        self.p = ports
        self.report = RunReporter(ports)
        self.steps = StepRunner(ports, self.report)
        self.undo = CancelledRun(ports, self.report, self.steps.rollback)
        self.approvals = Approvals(ports, self.report)
        self.running: dict[str, asyncio.Future[tuple[RunStatus, str, Guard | None]]] = {}
        """The steps of each run under way, by run id (what `cancel` stops)."""
        self.cancels: dict[str, str] = {}
        """Runs a person asked to cancel, and who asked."""
        self._paused_paged: dict[tuple[str, str], None] = {}
        """(pause, incident) pairs already paged about: a pause pages once per incident."""

    def cancel(self, run_id: str, actor: str) -> bool:
        """Stop a run under way (its applied steps are rolled back); False if none is."""
        steps = self.running.get(run_id)
        if steps is None or steps.done():
            return False
        self.cancels[run_id] = actor
        steps.cancel()
        log.warning("run_cancel_requested", run_id=run_id, actor=actor)
        return True

    # -- the run ------------------------------------------------------------
    async def execute(self, req: RunRequest) -> RunResult:
        pb = req.loaded.playbook
        dry = self.p.dry_run or self.p.settings.dry_run or req.dry_run or pb.mode == "shadow"
        run_id = uuid.uuid4().hex[:12]
        key = target_key(self.p.pod, req.target)
        params = {**pb.params, **req.params}
        config = await self._read_config(req.target.get("model"))
        facts = build_context(
            incident=req.incident,
            target=req.target,
            params=params,
            facts=self.p.facts,
            server_names=self.p.settings.server_process_names,
            config=config,
            now=self.p.clock.now(),
            dry_run=dry,
        )
        if req.lease is not None:
            facts["lease"] = req.lease
        ctx = RunContext(facts)
        record = {
            "id": run_id,
            "playbook": pb.name,
            "sha256": req.loaded.sha256,
            "target_key": key,
            "target": req.target,
            "incident_id": None if req.manual else req.incident.id,
            "incident": facts["incident"],
            "params": params,
            "actor": req.actor,
            "dry_run": dry,
            "started_at": self.p.clock.now(),
            # what the decisions were made on: the live config and the facts at the start
            "evidence": {"model_config": config, "gpu": facts["gpu"], "triton": facts["triton"]},
        }
        verdict = self._pre_run(req, ctx, key)
        if verdict is not None:
            return await self._refuse(req, record, verdict, dry)
        holder = None if dry else self.p.history.try_lock(key, run_id, self.p.clock.now())
        if holder is not None:
            verdict = Verdict(RunStatus.SKIPPED, f"run {holder} {LOCKED} {key}", guard=Guard.LOCK)
            return await self._refuse(req, record, verdict, dry)
        if self._cleared_meanwhile(req):
            # the lock (or reading the config) took time: never act on what has gone away
            if not dry:
                self.p.history.unlock(key, run_id)
            return await self._refuse(req, record, cleared(req.incident), dry)
        self.p.history.start_run({**record, "status": RunStatus.RUNNING, "counted": not dry})
        if self.p.metrics is not None and not dry:
            self.p.metrics.budget_exhausted.labels(pb.name).set(0)
        log.info("run_started", run_id=run_id, playbook=pb.name, target=key, dry_run=dry)
        # the steps run as their own task so that `cancel(run_id)` stops this run alone
        work = asyncio.ensure_future(self._steps(req, run_id, ctx, dry))
        self.running[run_id] = work
        try:
            status, reason, stopped_by = await work
        except asyncio.CancelledError:
            canceller = self.cancels.pop(run_id, None)
            task = asyncio.current_task()
            if canceller is None or (task is not None and task.cancelling()):
                # stopping the daemon: leave the run 'running' so recovery marks it interrupted
                raise
            status, reason = await self.undo.cancelled(req, run_id, ctx, canceller, dry)
            stopped_by = None
        except Exception as exc:  # a bug must not take the daemon down; record it
            log.exception("run_crashed", run_id=run_id)
            status, reason = RunStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}"
            stopped_by = None
        finally:
            self.running.pop(run_id, None)
            self.cancels.pop(run_id, None)
            if not dry:
                self.p.history.unlock(key, run_id)
        self.p.history.finish_run(run_id, status, reason, self.p.clock.now(), record["evidence"])
        log.info("run_finished", run_id=run_id, playbook=pb.name, status=status, reason=reason)
        self.report.count(pb.name, status, "")
        if status not in (RunStatus.SUCCEEDED, RunStatus.PLANNED) and not dry and not req.manual:
            self.report.back_to_firing(req)
        await self.report.tell(req, run_id, None, status, f"{pb.name}: {status}. {reason}", {}, dry)
        steps = self.p.history.steps(run_id)
        return RunResult(run_id, pb.name, status, reason, dry, steps, refused_by=stopped_by)

    def _pre_run(self, req: RunRequest, ctx: RunContext, key: str) -> Verdict | None:
        pb = req.loaded.playbook
        s = self.p.settings
        now = self.p.clock.now()
        if pb.mode == "disabled":
            return Verdict(RunStatus.SKIPPED, "playbook is disabled", guard=Guard.DISABLED)
        pause = self._pause_of(req)
        if pause is not None:
            return paused(pause, pb.name, key, page=self._first_page(pause.id, req))
        if not req.manual:
            max_age = min(
                [s.max_event_age_s] + [t.max_age for t in pb.triggers if t.max_age is not None]
            )
            stale = freshness(req.incident, now, max_age)
            if stale is not None:
                return stale
        if pb.when is not None:
            try:
                if not condition(pb.when, ctx.template()):
                    return Verdict(RunStatus.SKIPPED, f"when: {pb.when} is false", guard=Guard.WHEN)
            except TemplateFailure as exc:
                return Verdict(RunStatus.FAILED, f"when: {exc}", page=True, guard=Guard.WHEN)
        breaker = self.p.history.breaker()
        if breaker["open"]:
            return Verdict(
                RunStatus.BLOCKED,
                f"circuit breaker open since {breaker['opened_at']}: {breaker['reason']}; "
                "automation stopped until `sentinel breaker reset`",
                page=True,
                guard=Guard.BREAKER,
            )
        cooldown = pb.guards.cooldown if pb.guards.cooldown is not None else s.cooldown_s
        last = self.p.history.last_counted_end(pb.name, key)
        if last is not None and now - last < cooldown:
            why = f"cooldown: last run {now - last:.0f} s ago (< {cooldown:g} s)"
            return Verdict(RunStatus.SKIPPED, why, guard=Guard.COOLDOWN)
        runs, per = (
            (pb.guards.budget.runs, pb.guards.budget.per)
            if pb.guards.budget is not None
            else (s.budget_runs, s.budget_window_s)
        )
        used = self.p.history.counted_runs_since(pb.name, key, now - per)
        if used >= runs:
            return Verdict(
                RunStatus.PAGED,
                f"run budget spent: {used} runs of {pb.name} on {key} in {per:g} s (max {runs}); "
                "a human is needed",
                page=True,
                guard=Guard.BUDGET,
            )
        return first_gate(pb.guards.blocked_if, ctx.template())

    async def _refuse(
        self, req: RunRequest, record: dict[str, Any], verdict: Verdict, dry: bool
    ) -> RunResult:
        """Record a run that guards stopped before any step, and page if they say so."""
        self.p.history.start_run({**record, "status": verdict.status, "reason": verdict.reason})
        self.p.history.finish_run(
            record["id"], verdict.status, verdict.reason, self.p.clock.now(), record["evidence"]
        )
        log.info(
            "run_refused", playbook=record["playbook"], status=verdict.status, reason=verdict.reason
        )
        self.report.count(record["playbook"], verdict.status, verdict.guard or "")
        if verdict.page:
            await self.report.page(
                req, record["id"], verdict.reason, {"guard": verdict.status}, dry
            )
        return RunResult(
            record["id"],
            record["playbook"],
            verdict.status,
            verdict.reason,
            dry,
            refused_by=verdict.guard,
        )

    def _pause_of(self, req: RunRequest) -> Pause | None:
        """The pause covering this run: automatic runs and lease restores (a person's own
        run goes ahead; pausing is about what sentinel does on its own)."""
        if self.p.pauses is None or (req.manual and req.lease is None):
            return None
        name = str(req.lease["playbook"]) if req.lease is not None else req.loaded.playbook.name
        return self.p.pauses.covering(name, req.target.get("model"))

    def _first_page(self, pause_id: str, req: RunRequest) -> bool:
        """Page about a paused automatic run once per pause and incident, not at each retry."""
        if req.manual:
            return False
        seen = (pause_id, req.incident.id)
        if seen in self._paused_paged:
            return False
        self._paused_paged[seen] = None
        while len(self._paused_paged) > _PAGED_KEPT:
            del self._paused_paged[next(iter(self._paused_paged))]
        return True

    def _cleared_meanwhile(self, req: RunRequest) -> bool:
        """The incident resolved after it was matched (a person's run is exempt)."""
        if req.manual or self.p.cleared is None:
            return False
        try:
            return self.p.cleared(req.incident.id)
        except Exception:
            log.exception("cleared_check_failed", incident=req.incident.id)
            return False

    async def _steps(
        self, req: RunRequest, run_id: str, ctx: RunContext, dry: bool
    ) -> tuple[RunStatus, str, Guard | None]:
        """How the steps ended, and the guard that stopped them (None: they ran)."""
        pb = req.loaded.playbook
        if pb.mode == "approve" and not dry and not req.manual:
            refused = await self.approvals.wait(req, run_id, ctx)
            if refused is not None:
                return refused.status, refused.reason, refused.guard
            if self._cleared_meanwhile(req):  # it may have, while a person decided
                verdict = cleared(req.incident)
                await self.report.page(req, run_id, verdict.reason, {}, dry)
                return verdict.status, verdict.reason, verdict.guard
        if not dry and not req.manual and self.p.incidents is not None:
            try:
                changes = self.p.incidents.mark_mitigating(req.incident.id, pb.name, run_id)
            except Exception:
                log.exception("mark_mitigating_failed", incident=req.incident.id)
                changes = []
            for change in changes:
                await self.report.tell_change(change)
        await self.report.tell(req, run_id, None, "started", f"{pb.name} started", {}, dry)
        failure = ""
        try:
            for step in pb.steps:
                ok = await self.steps.run(req, run_id, ctx, step, "step", dry)
                if not ok and not step.continue_on_failure:
                    failure = f"step {step.name} failed"
                    break
        except Abort as abort:
            await self.report.page(req, run_id, abort.verdict.reason, {}, dry)
            return abort.verdict.status, abort.verdict.reason, abort.verdict.guard
        if dry:
            why = "dry run: plan recorded, nothing with a side effect was called"
            return RunStatus.PLANNED, why, None
        if not failure:
            failure = _unverified(ctx)
        if not failure:
            return (*_outcome(ctx), None)
        for step in pb.on_failure:
            try:
                await self.steps.run(req, run_id, ctx, step, "on_failure", dry)
            except Abort as abort:
                return abort.verdict.status, abort.verdict.reason, abort.verdict.guard
        return RunStatus.FAILED, failure, None

    async def _read_config(self, model: str | None) -> dict[str, Any]:
        """The model's live config for templates (a read; fine in a dry run).

        Read even when the last health sample said the server was not live: one missed
        deadline under load says little, and an empty config makes a playbook's ``when:``
        false, skipping a fix the incident needs (seen in bench/time_to_mitigate.py). A
        dead server costs the adapter's deadline (``triton.timeout_s``) here, once."""
        if not model or self.p.triton is None:
            return {}
        try:
            return await self.p.triton.model_config(model)
        except Exception as exc:
            log.warning("model_config_unreadable", model=model, error=str(exc))
            return {}


def _unverified(ctx: RunContext) -> str:
    """A run whose verified steps all failed did not fix anything."""
    checked = [(n, s) for n, s in ctx.steps.items() if s.verified is not None]
    if checked and not any(s.verified for _, s in checked):
        return "no step's fix verified: " + ", ".join(n for n, _ in checked)
    return ""


def _outcome(ctx: RunContext) -> tuple[RunStatus, str]:
    """succeeded (a fix verified, or nothing needed verifying), blocked, or paged."""
    steps = ctx.steps
    verified = [n for n, s in steps.items() if s.verified]
    if verified:
        return RunStatus.SUCCEEDED, f"verified: {', '.join(verified)}"
    blocked = [f"{n}: {s.blocked}" for n, s in steps.items() if s.status == StepStatus.BLOCKED]
    if blocked:
        return RunStatus.BLOCKED, "; ".join(blocked)
    paged = [n for n, s in steps.items() if s.status == StepStatus.SUCCEEDED and s.paged]
    if paged:
        return RunStatus.PAGED, f"a human was paged ({', '.join(paged)})"
    return RunStatus.SUCCEEDED, "all steps done"
