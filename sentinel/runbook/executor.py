"""The executor: runs one playbook for one target, and owns every safety rule.

Guards, in order: mode, freshness (cleared/stale), ``when:``, the circuit
breaker, cooldown, budget (then page), cause-aware ``blocked_if`` gates, the
target lock. Then steps: ``if:``, step gates, rendering, dry-run (an action
that declares side effects is never called), the fleet guard for disruptive
actions, the breaker again, timeout, transient-only retries with backoff,
verification by canary, rollback, and a lease for ``restore_after``.
Every decision is a row in SQLite before anything is called.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from sentinel.base.clock import Clock
from sentinel.runbook.actions import REGISTRY
from sentinel.runbook.actions.base import ActionContext, ActionError, TransientError, classify
from sentinel.runbook.context import build_context
from sentinel.runbook.guards import FleetGuard, IncidentMarker, Verdict, first_gate, freshness
from sentinel.runbook.history import History
from sentinel.runbook.metrics import RunbookMetrics
from sentinel.runbook.schema import LoadedPlaybook, Rollback, Step
from sentinel.runbook.settings import RunbookSettings
from sentinel.runbook.templating import TemplateFailure, condition, render
from sentinel.runbook.verify import baseline_p99, verify
from sentinel.vocabulary.incidents import Incident
from sentinel.vocabulary.notices import ActionUpdate, IncidentChanged, PageRequest, Teller
from sentinel.vocabulary.ports import CanaryRunner, Facts, TritonControl

log = structlog.get_logger(__name__)
T = TypeVar("T")


class StepTimeout(ActionError):
    """The step's action ran past its timeout (not retried: it may have half-happened)."""


@dataclass(slots=True)
class Ports:
    """Everything outside the executor it may touch; None where the daemon has none."""

    clock: Clock
    settings: RunbookSettings
    history: History
    triton: TritonControl | None = None
    canary: CanaryRunner | None = None
    facts: Facts | None = None
    teller: Teller | None = None
    incidents: IncidentMarker | None = None
    fleet: FleetGuard | None = None
    pod: str = ""
    metrics: RunbookMetrics | None = None
    dry_run: bool = False
    """Global dry run (config ``dry_run`` or ``playbooks.dry_run``): nothing acts, leases too."""


@dataclass(slots=True)
class RunRequest:
    """One run to decide on: which playbook, for what, by whom."""

    loaded: LoadedPlaybook
    incident: Incident
    target: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    actor: str = "automatic"
    dry_run: bool = False
    manual: bool = False


@dataclass(slots=True)
class RunResult:
    """What happened; ``steps`` as recorded."""

    run_id: str
    playbook: str
    status: str
    reason: str
    dry_run: bool
    steps: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "playbook": self.playbook,
            "status": self.status,
            "reason": self.reason,
            "dry_run": self.dry_run,
            "steps": self.steps,
        }


def target_key(pod: str, target: dict[str, str]) -> str:
    """One run at a time per model on this server."""
    return f"{pod}/{target.get('model', '*')}"


class _Abort(Exception):
    """Stop the run now with this verdict (breaker opened mid-run)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


class Executor:
    """Runs playbooks; one instance per daemon (stateless between runs but for SQLite)."""

    def __init__(self, ports: Ports) -> None:
        self.p = ports

    # -- the run ------------------------------------------------------------
    async def execute(self, req: RunRequest) -> RunResult:
        pb = req.loaded.playbook
        dry = self.p.dry_run or self.p.settings.dry_run or req.dry_run or pb.mode == "shadow"
        run_id = uuid.uuid4().hex[:12]
        key = target_key(self.p.pod, req.target)
        params = {**pb.params, **req.params}
        config = await self._read_config(req.target.get("model"))
        ctx = build_context(
            incident=req.incident,
            target=req.target,
            params=params,
            facts=self.p.facts,
            server_names=self.p.settings.server_process_names,
            config=config,
            now=self.p.clock.now(),
            dry_run=dry,
        )
        record = {
            "id": run_id,
            "playbook": pb.name,
            "sha256": req.loaded.sha256,
            "target_key": key,
            "target": req.target,
            "incident_id": None if req.manual else req.incident.id,
            "incident": ctx["incident"],
            "params": params,
            "actor": req.actor,
            "dry_run": dry,
            "started_at": self.p.clock.now(),
            # what the decisions were made on: the live config and the facts at the start
            "evidence": {"model_config": config, "gpu": ctx["gpu"], "triton": ctx["triton"]},
        }
        verdict = self._pre_run(req, ctx, key)
        if verdict is not None:
            return await self._refuse(req, record, verdict, dry)
        holder = None if dry else self.p.history.try_lock(key, run_id, self.p.clock.now())
        if holder is not None:
            verdict = Verdict("skipped", f"run {holder} {LOCKED} {key}", guard="lock")
            return await self._refuse(req, record, verdict, dry)
        self.p.history.start_run({**record, "status": "running", "counted": not dry})
        if self.p.metrics is not None and not dry:
            self.p.metrics.budget_exhausted.labels(pb.name).set(0)
        log.info("run_started", run_id=run_id, playbook=pb.name, target=key, dry_run=dry)
        try:
            status, reason = await self._steps(req, run_id, ctx, dry)
        except asyncio.CancelledError:
            # stopping the daemon: leave the run 'running' so recovery marks it interrupted
            raise
        except Exception as exc:  # a bug must not take the daemon down; record it
            log.exception("run_crashed", run_id=run_id)
            status, reason = "failed", f"internal error: {type(exc).__name__}: {exc}"
        finally:
            if not dry:
                self.p.history.unlock(key, run_id)
        self.p.history.finish_run(run_id, status, reason, self.p.clock.now(), record["evidence"])
        log.info("run_finished", run_id=run_id, playbook=pb.name, status=status, reason=reason)
        self._count(pb.name, status, "")
        if status not in ("succeeded", "planned") and not dry and not req.manual:
            self._back_to_firing(req)
        await self._tell(req, run_id, None, status, f"{pb.name}: {status}. {reason}", {}, dry)
        return RunResult(run_id, pb.name, status, reason, dry, self.p.history.steps(run_id))

    def _pre_run(self, req: RunRequest, ctx: dict[str, Any], key: str) -> Verdict | None:
        pb = req.loaded.playbook
        s = self.p.settings
        now = self.p.clock.now()
        if pb.mode == "disabled":
            return Verdict("skipped", "playbook is disabled", guard="disabled")
        if not req.manual:
            max_age = min(
                [s.max_event_age_s] + [t.max_age for t in pb.triggers if t.max_age is not None]
            )
            stale = freshness(req.incident, now, max_age)
            if stale is not None:
                return stale
        if pb.when is not None:
            try:
                if not condition(pb.when, ctx):
                    return Verdict("skipped", f"when: {pb.when} is false", guard="when")
            except TemplateFailure as exc:
                return Verdict("failed", f"when: {exc}", page=True, guard="when")
        breaker = self.p.history.breaker()
        if breaker["open"]:
            return Verdict(
                "blocked",
                f"circuit breaker open since {breaker['opened_at']}: {breaker['reason']}; "
                "automation stopped until `sentinel breaker reset`",
                page=True,
                guard="breaker",
            )
        cooldown = pb.guards.cooldown if pb.guards.cooldown is not None else s.cooldown_s
        last = self.p.history.last_counted_end(pb.name, key)
        if last is not None and now - last < cooldown:
            why = f"cooldown: last run {now - last:.0f} s ago (< {cooldown:g} s)"
            return Verdict("skipped", why, guard="cooldown")
        runs, per = (
            (pb.guards.budget.runs, pb.guards.budget.per)
            if pb.guards.budget is not None
            else (s.budget_runs, s.budget_window_s)
        )
        used = self.p.history.counted_runs_since(pb.name, key, now - per)
        if used >= runs:
            return Verdict(
                "paged",
                f"run budget spent: {used} runs of {pb.name} on {key} in {per:g} s (max {runs}); "
                "a human is needed",
                page=True,
                guard="budget",
            )
        return first_gate(pb.guards.blocked_if, ctx)

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
        self._count(record["playbook"], verdict.status, verdict.guard)
        if verdict.page:
            await self._page(req, record["id"], verdict.reason, {"guard": verdict.status}, dry)
        return RunResult(record["id"], record["playbook"], verdict.status, verdict.reason, dry)

    async def _steps(
        self, req: RunRequest, run_id: str, ctx: dict[str, Any], dry: bool
    ) -> tuple[str, str]:
        pb = req.loaded.playbook
        if not dry and not req.manual and self.p.incidents is not None:
            try:
                changes = self.p.incidents.mark_mitigating(req.incident.id, pb.name, run_id)
            except Exception:
                log.exception("mark_mitigating_failed", incident=req.incident.id)
                changes = []
            for change in changes:
                await self._tell_change(change)
        await self._tell(req, run_id, None, "started", f"{pb.name} started", {}, dry)
        failure = ""
        try:
            for step in pb.steps:
                ok = await self._step(req, run_id, ctx, step, "step", dry)
                if not ok and not step.continue_on_failure:
                    failure = f"step {step.name} failed"
                    break
        except _Abort as abort:
            await self._page(req, run_id, abort.verdict.reason, {}, dry)
            return abort.verdict.status, abort.verdict.reason
        if dry:
            return "planned", "dry run: plan recorded, nothing with a side effect was called"
        if not failure:
            failure = _unverified(ctx)
        if not failure:
            return _outcome(ctx)
        for step in pb.on_failure:
            try:
                await self._step(req, run_id, ctx, step, "on_failure", dry)
            except _Abort as abort:
                return abort.verdict.status, abort.verdict.reason
        return "failed", failure

    # -- one step -----------------------------------------------------------
    async def _step(
        self, req: RunRequest, run_id: str, ctx: dict[str, Any], step: Step, phase: str, dry: bool
    ) -> bool:
        """Run one step; False when it failed. Blocked or skipped steps are not failures."""
        h, now = self.p.history, self.p.clock.now
        action = REGISTRY[step.action]
        mutating = action.spec.mutating
        state: dict[str, Any] = {"status": "pending", "output": {}, "verified": None}
        ctx["steps"][step.name] = state
        if step.if_ is not None:
            try:
                go = condition(step.if_, ctx)
            except TemplateFailure as exc:
                if dry:
                    go = True  # earlier outcomes are unknown in a plan: show the step
                else:
                    return self._fail(run_id, step, phase, state, f"if: {exc}")
            if not go:
                state["status"] = "skipped"
                h.start_step(
                    run_id,
                    phase,
                    step.name,
                    step.action,
                    "skipped",
                    mutating,
                    {},
                    now(),
                    f"if: {step.if_} is false",
                )
                return True
        gate = first_gate(step.blocked_if, ctx)
        if gate is not None:
            return await self._blocked(req, run_id, step, phase, state, gate, dry)
        try:
            params = render(step.with_, ctx)
        except TemplateFailure as exc:
            return self._fail(run_id, step, phase, state, f"with: {exc}")
        if dry:
            state["status"] = "planned"
            note = "would run" + (
                f", then verify {step.verify.model_dump()}" if step.verify else ""
            )
            h.start_step(
                run_id, phase, step.name, step.action, "planned", mutating, params, now(), note
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
                    "blocked", "fleet guard refused: too many replicas disrupted", True, "fleet"
                )
                return await self._blocked(req, run_id, step, phase, state, verdict, dry)
        actx = self._action_context(req, run_id, step.name)
        step_id = h.start_step(
            run_id, phase, step.name, step.action, "started", mutating, params, now()
        )
        await self._tell(req, run_id, step.name, "started", f"{step.action} {params}", {}, dry)
        try:
            output, attempts = await self._call(step, actx, params)
        except ActionError as exc:
            self._count_action(step.action, "failed")
            state.update(status="failed", error=str(exc))
            h.finish_step(step_id, "failed", now(), reason=str(exc))
            await self._tell(req, run_id, step.name, "failed", str(exc), {}, dry)
            return False
        self._count_action(step.action, "succeeded")
        state.update(status="succeeded", output=output, paged=step.action == "pagerduty.trigger")
        h.finish_step(step_id, "succeeded", now(), output, attempts=attempts)
        await self._tell(req, run_id, step.name, "succeeded", f"{step.action} done", output, dry)
        if step.verify is None:
            return True
        return await self._verify_step(req, run_id, ctx, step, phase, state, params, output)

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
            if action.spec.side_effects and self._dry_everywhere():
                raise ActionError("refused: a dry run never calls an action with side effects")
            try:
                out = await self._timed(action.run(actx, params), step.timeout)
                return out, attempt
            except StepTimeout:
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = classify(exc)
                if not isinstance(err, TransientError) or attempt > retries:
                    raise err from exc
                log.warning("step_retry", step=step.name, attempt=attempt, error=str(err))
                await self.p.clock.sleep(delay)
                delay *= step.retry.factor if step.retry else 1.0

    async def _timed(self, coro: Awaitable[T], seconds: float) -> T:
        """Await ``coro`` with a deadline on the injected clock."""
        work = asyncio.ensure_future(coro)
        timer = asyncio.ensure_future(self.p.clock.sleep(seconds))
        try:
            await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            timer.cancel()
            raise
        if work.done():
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)
            return work.result()
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        raise StepTimeout(f"timed out after {seconds:g} s")

    async def _verify_step(
        self,
        req: RunRequest,
        run_id: str,
        ctx: dict[str, Any],
        step: Step,
        phase: str,
        state: dict[str, Any],
        params: dict[str, Any],
        output: dict[str, Any],
    ) -> bool:
        assert step.verify is not None
        h, now = self.p.history, self.p.clock.now
        model = str(params.get("model") or req.target.get("model") or "")
        vid = h.start_step(
            run_id, "verify", step.name, "canary.verify", "started", False, {}, now()
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
        state["verified"] = ok
        state["verification"] = evidence
        h.finish_step(vid, "verified" if ok else "verify_failed", now(), evidence)
        text = f"verification of {step.name} {'passed' if ok else 'failed'}"
        await self._tell(
            req, run_id, step.name, "verified" if ok else "failed", text, evidence, False
        )
        if ok:
            if step.restore_after is not None:
                self._add_lease(req, run_id, step, output, model, evidence.get("baseline_p99_s"))
            return True
        await self._rollback(req, run_id, ctx, step, params, output)
        state["status"] = "rolled_back"
        return True  # a failed verification is an answer, not an error: the ladder goes on

    def _baseline(
        self, step: Step, ctx: dict[str, Any], req: RunRequest, model: str
    ) -> float | None:
        assert step.verify is not None
        raw = step.verify.baseline_p99_s
        if raw is not None:
            try:
                value = render(raw, ctx)
                return float(value) if value not in (None, "") else None
            except (TemplateFailure, TypeError, ValueError):
                log.warning("baseline_unreadable", step=step.name, template=str(raw))
        return baseline_p99(self.p.facts, model, req.incident.started_at)

    async def _rollback(
        self,
        req: RunRequest,
        run_id: str,
        ctx: dict[str, Any],
        step: Step,
        params: dict[str, Any],
        output: dict[str, Any],
    ) -> None:
        h, now = self.p.history, self.p.clock.now
        actx = self._action_context(req, run_id, step.name)
        if step.rollback == "none":
            h.start_step(
                run_id,
                "rollback",
                step.name,
                step.action,
                "skipped",
                False,
                {},
                now(),
                "rollback: none (this step cannot be undone)",
            )
            return
        if isinstance(step.rollback, Rollback):
            rb = step.rollback
            try:
                rb_params = render(rb.with_, {**ctx, "output": output})
            except TemplateFailure as exc:
                h.start_step(
                    run_id, "rollback", step.name, rb.action, "failed", True, {}, now(), str(exc)
                )
                await self._page(req, run_id, f"rollback of {step.name} failed: {exc}", {}, False)
                return
            rid = h.start_step(
                run_id, "rollback", step.name, rb.action, "started", True, rb_params, now()
            )
            rb_action = REGISTRY[rb.action]

            def call() -> Awaitable[Any]:
                return rb_action.run(actx, rb_params)

        else:
            rid = h.start_step(
                run_id, "rollback", step.name, step.action, "started", True, params, now()
            )
            action = REGISTRY[step.action]

            def call() -> Awaitable[Any]:
                return action.undo(actx, params, output)

        try:
            if self._dry_everywhere():
                raise ActionError("refused: a dry run never calls an action with side effects")
            await self._timed(call(), step.timeout)
        except Exception as exc:
            h.finish_step(rid, "failed", now(), reason=str(exc))
            await self._page(req, run_id, f"rollback of {step.name} failed: {exc}", {}, False)
            return
        h.finish_step(rid, "rolled_back", now())
        await self._tell(
            req, run_id, step.name, "rolled_back", f"{step.name} rolled back", {}, False
        )

    def _add_lease(
        self,
        req: RunRequest,
        run_id: str,
        step: Step,
        output: dict[str, Any],
        model: str,
        baseline: float | None,
    ) -> None:
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

    # -- helpers ------------------------------------------------------------
    def _dry_everywhere(self) -> bool:
        """The global dry run: a second, structural check where actions are called."""
        return self.p.dry_run or self.p.settings.dry_run

    def _count(self, playbook: str, outcome: str, guard: str) -> None:
        m = self.p.metrics
        if m is None:
            return
        m.runs.labels(playbook, outcome).inc()
        if guard:
            m.blocks.labels(playbook, guard).inc()
        if guard == "budget":
            m.budget_exhausted.labels(playbook).set(1)

    def _count_action(self, action: str, outcome: str) -> None:
        if self.p.metrics is not None:
            self.p.metrics.actions.labels(action, outcome).inc()

    async def _tell_change(self, change: IncidentChanged) -> None:
        if self.p.teller is None:
            return
        try:
            await self.p.teller.tell(change)
        except Exception:
            log.exception("tell_failed", incident=change.incident.id)

    def _back_to_firing(self, req: RunRequest) -> None:
        if self.p.incidents is None:
            return
        try:
            self.p.incidents.mark_firing(req.incident.id)
        except Exception:
            log.exception("mark_firing_failed", incident=req.incident.id)

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
            raise _Abort(Verdict("blocked", reason, page=True, guard="breaker"))

    async def _blocked(
        self,
        req: RunRequest,
        run_id: str,
        step: Step,
        phase: str,
        state: dict[str, Any],
        verdict: Verdict,
        dry: bool,
    ) -> bool:
        state.update(status="blocked", blocked=verdict.reason)
        if self.p.metrics is not None:
            self.p.metrics.blocks.labels(req.loaded.playbook.name, verdict.guard).inc()
        self.p.history.start_step(
            run_id,
            phase,
            step.name,
            step.action,
            "blocked",
            False,
            {},
            self.p.clock.now(),
            verdict.reason,
        )
        await self._page(req, run_id, f"skipped {step.name}: {verdict.reason}", {}, dry)
        return True

    def _fail(self, run_id: str, step: Step, phase: str, state: dict[str, Any], why: str) -> bool:
        state.update(status="failed", error=why)
        self.p.history.start_step(
            run_id, phase, step.name, step.action, "failed", False, {}, self.p.clock.now(), why
        )
        log.warning("step_failed", run_id=run_id, step=step.name, reason=why)
        return False

    def _action_context(self, req: RunRequest, run_id: str, step: str) -> ActionContext:
        return ActionContext(
            clock=self.p.clock,
            settings=self.p.settings,
            incident=req.incident,
            playbook=req.loaded.playbook.name,
            run_id=run_id,
            step=step,
            pod=self.p.pod,
            triton=self.p.triton,
            canary=self.p.canary,
            facts=self.p.facts,
            teller=self.p.teller,
        )

    async def _read_config(self, model: str | None) -> dict[str, Any]:
        """The model's live config for templates (a read; fine in a dry run)."""
        if not model or self.p.triton is None:
            return {}
        if server_known_down(self.p.facts):
            return {}  # a server the health probe just found dead would only time out
        try:
            return await self.p.triton.model_config(model)
        except Exception as exc:
            log.warning("model_config_unreadable", model=model, error=str(exc))
            return {}

    async def _tell(
        self,
        req: RunRequest,
        run_id: str,
        step: str | None,
        status: str,
        text: str,
        evidence: dict[str, Any],
        dry: bool,
    ) -> None:
        if dry or self.p.teller is None:
            return  # a dry run tells no one: the plan is in the log and the run record
        incident = None if req.manual else req.incident
        notice = ActionUpdate(
            incident, req.loaded.playbook.name, run_id, step, status, text, evidence
        )
        try:
            await self.p.teller.tell(notice)
        except Exception:
            log.exception("tell_failed", run_id=run_id)

    async def _page(
        self, req: RunRequest, run_id: str, reason: str, evidence: dict[str, Any], dry: bool
    ) -> None:
        log.warning("page" if not dry else "would_page", run_id=run_id, reason=reason)
        if dry or self.p.teller is None:
            return
        try:
            await self.p.teller.tell(
                PageRequest(
                    req.incident,
                    reason,
                    {"run_id": run_id, "playbook": req.loaded.playbook.name, **evidence},
                )
            )
        except Exception:
            log.exception("page_failed", run_id=run_id)


def _unverified(ctx: dict[str, Any]) -> str:
    """A run whose verified steps all failed did not fix anything."""
    checked = [(n, s) for n, s in ctx["steps"].items() if s.get("verified") is not None]
    if checked and not any(s["verified"] for _, s in checked):
        return "no step's fix verified: " + ", ".join(n for n, _ in checked)
    return ""


def _outcome(ctx: dict[str, Any]) -> tuple[str, str]:
    """succeeded (a fix verified, or nothing needed verifying), blocked, or paged."""
    steps = ctx["steps"]
    verified = [n for n, s in steps.items() if s.get("verified")]
    if verified:
        return "succeeded", f"verified: {', '.join(verified)}"
    blocked = [f"{n}: {s['blocked']}" for n, s in steps.items() if s["status"] == "blocked"]
    if blocked:
        return "blocked", "; ".join(blocked)
    paged = [n for n, s in steps.items() if s["status"] == "succeeded" and s.get("paged")]
    if paged:
        return "paged", f"a human was paged ({', '.join(paged)})"
    return "succeeded", "all steps done"


LOCKED = "is already acting on"
"""The reason text of a run skipped because another run holds the target's lock."""


def server_known_down(facts: Facts | None) -> bool:
    """The latest health sample says the server is not live (so calls to it would hang)."""
    health = facts.triton() if facts is not None else None
    return health is not None and not health.live
