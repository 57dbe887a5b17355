"""The runbook engine: matches incident changes to playbooks and runs them.

``handle(change)`` is the daemon pipeline's hook (``pipeline.Actor``): it
returns at once and runs playbooks as background tasks, so a two-minute
verification never stalls observation. ``start()`` recovers runs a crash
left behind and starts the lease keeper; ``stop()`` cancels what is running
(those runs are marked interrupted at the next start).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from sentinel.base.clock import Clock
from sentinel.base.yamlsource import Problem
from sentinel.runbook.context import synthetic_incident
from sentinel.runbook.errors import UnknownPlaybook
from sentinel.runbook.executor import Executor
from sentinel.runbook.guards import AllowAllGuard, FleetGuard, IncidentMarker, trigger_matches
from sentinel.runbook.history import History
from sentinel.runbook.leases import LeaseKeeper
from sentinel.runbook.metrics import RunbookMetrics
from sentinel.runbook.pauses import PausedCollector, PauseNotingTeller, Pauses, PauseStore
from sentinel.runbook.records import Ports, RunRequest, RunResult
from sentinel.runbook.schema import LoadedPlaybook, invalid_files, load_dirs
from sentinel.runbook.settings import RunbookSettings
from sentinel.runbook.status import Guard, RunStatus
from sentinel.runbook.targets import target_key, target_of
from sentinel.vocabulary.incidents import Incident, IncidentStatus
from sentinel.vocabulary.notices import IncidentChanged, Teller
from sentinel.vocabulary.ports import CanaryRunner, Facts, TritonControl

log = structlog.get_logger(__name__)

# Statuses of a run that guards stopped before it acted (the next playbook may try).
_NOT_ACTED = {RunStatus.SKIPPED}
_TRIGGERING = {"opened", "escalated", "reopened", "renotify"}


_CLEARED_KEPT = 4096

LOCK_RETRY_S = 1.0
"""How often an incident whose target is locked by another run tries again."""


class Engine:
    """Decides what to run for each incident change; owns the executor and leases."""

    def __init__(
        self,
        *,
        settings: RunbookSettings,
        conn: sqlite3.Connection,
        clock: Clock,
        playbooks: dict[str, LoadedPlaybook] | None = None,
        triton: TritonControl | None = None,
        canary: CanaryRunner | None = None,
        facts: Facts | None = None,
        teller: Teller | None = None,
        incidents: IncidentMarker | None = None,
        fleet: FleetGuard | None = None,
        pod: str = "",
        dry_run: bool = False,
        models: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.models = list(dict.fromkeys(models))
        """Models this sidecar serves (the target of server- and GPU-wide incidents)."""
        self.history = History(conn)
        self.pauses = Pauses(
            PauseStore(conn), clock.now, settings.paused, settings.pause_annotations_file
        )
        if registry is not None:
            registry.register(PausedCollector(self.pauses.active))
        self.ports = Ports(
            clock=clock,
            settings=settings,
            history=self.history,
            triton=triton,
            canary=canary,
            facts=facts,
            teller=None if teller is None else PauseNotingTeller(teller, self.pauses),
            incidents=incidents,
            fleet=fleet or AllowAllGuard(),
            pod=pod,
            metrics=RunbookMetrics(registry) if registry is not None else None,
            dry_run=dry_run or settings.dry_run,
            cleared=self.cleared,
            pauses=self.pauses,
        )
        self.executor = Executor(self.ports)
        self.leases = LeaseKeeper(self.ports, self.executor, self.model_unhealthy)
        self.problems: list[Problem] = []
        self.playbooks: dict[str, LoadedPlaybook] = {}
        if playbooks is None:
            self.reload()
        else:
            self.playbooks = dict(playbooks)
        self._open: dict[str, Incident] = {}
        self._cleared: dict[str, None] = {}
        """Incidents resolved since they opened, oldest first (asked just before a run's
        first step); the last ``_CLEARED_KEPT`` are enough for runs still deciding."""
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ----------------------------------------------------------
    def reload(self, all_or_nothing: bool = False) -> list[Problem]:
        """Re-read the playbook folders; bad files are reported and left out.

        ``all_or_nothing`` (a hot reload): if any file is invalid, every playbook stays
        as it was and only the problems are recorded.
        """
        found, problems = load_dirs(list(self.settings.dirs), self.settings.overrides)
        if all_or_nothing and invalid_files(problems):
            self.problems = problems
            log.error(
                "playbook_reload_refused",
                problems=[str(p) for p in problems],
                kept=sorted(self.playbooks),
            )
        else:
            self.playbooks, self.problems = found, problems
            if all_or_nothing:
                log.info("playbooks_reloaded", playbooks=sorted(found))
        for p in problems:
            log.error("playbook_invalid", problem=str(p))
        if self.ports.metrics is not None:
            self.ports.metrics.playbooks_invalid.set(len(invalid_files(problems)))
        return problems

    def recover(self) -> list[str]:
        """Mark runs a dead process left 'running' as interrupted (never re-run them)."""
        ids = self.history.recover(self.ports.clock.now())
        for run_id in ids:
            log.warning("run_interrupted", run_id=run_id)
        return ids

    async def start(self) -> None:
        self.recover()
        if self.ports.metrics is not None:
            self.ports.metrics.breaker_open.set(int(self.history.breaker()["open"]))
        self.leases.start()

    async def stop(self) -> None:
        await self.leases.stop()
        tasks, self._tasks = list(self._tasks), set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until every run and ``for:`` timer started so far is done (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- automatic ----------------------------------------------------------
    async def handle(self, change: IncidentChanged) -> None:
        """The pipeline hook: note the change and schedule any playbook it triggers."""
        incident = change.incident
        model = incident.subject.model or ""
        if incident.status == IncidentStatus.RESOLVED:
            self._open.pop(incident.id, None)
            self._cleared[incident.id] = None
            while len(self._cleared) > _CLEARED_KEPT:
                del self._cleared[next(iter(self._cleared))]
            return
        self._open[incident.id] = incident
        self._cleared.pop(incident.id, None)
        if change.change not in _TRIGGERING:
            return
        if model:
            await self.leases.fault(model)
        if self.settings.enabled:
            self._spawn(self._consider_later(incident.id))

    def _target_of(self, incident: Incident) -> dict[str, str]:
        return target_of(incident, self.models)

    def cleared(self, incident_id: str) -> bool:
        """The incident resolved after it was matched (and has not reopened)."""
        return incident_id in self._cleared

    def model_unhealthy(self, model: str) -> bool:
        """An incident is open on this model (the leases' health signal)."""
        return any(i.subject.model == model for i in self._open.values())

    def matching(self, incident: Incident) -> list[tuple[LoadedPlaybook, float]]:
        """Playbooks whose triggers match, with the longest ``for:`` each needs."""
        out = []
        for name in sorted(self.playbooks):
            lp = self.playbooks[name]
            hits = [t for t in lp.playbook.triggers if trigger_matches(t, incident)]
            if hits and lp.playbook.mode != "disabled":
                out.append((lp, min(t.for_ for t in hits)))
        return out

    async def consider(self, incident: Incident) -> list[RunResult]:
        """Run the first matching playbook that the guards let act (now, ``for:`` met)."""
        results: list[RunResult] = []
        for lp, _ in self.matching(incident):
            result = await self.executor.execute(
                RunRequest(lp, incident, self._target_of(incident), actor="automatic")
            )
            results.append(result)
            if result.status not in _NOT_ACTED or result.refused_by is Guard.CLEARED:
                break  # acted, or nothing left to act on (one page for a cleared finding)
        return results

    async def _consider_later(self, incident_id: str) -> list[RunResult]:
        incident = self._open.get(incident_id)
        if incident is None:
            return []
        matched = self.matching(incident)
        if not matched:
            return []
        wait = max(0.0, min(f for _, f in matched) - (self.ports.clock.now() - incident.started_at))
        if wait > 0:
            await self.ports.clock.sleep(wait)
        latest = self._open.get(incident_id)
        if latest is None:
            log.info("trigger_dropped", incident=incident_id, reason="cleared before for: elapsed")
            return []
        results = await self.consider(latest)
        if results and all(r.refused_by is Guard.LOCK for r in results):
            # another run held the target (e.g. a latency fix while the model also
            # drifted): this incident still deserves its own playbook once that run is over
            key = target_key(self.ports.pod, self._target_of(latest))
            give_up = self.ports.clock.monotonic() + self.settings.max_event_age_s
            while self.history.lock_holder(key) is not None:
                if self.ports.clock.monotonic() > give_up:
                    return results  # too old to act on by now: the age guard would refuse
                await self.ports.clock.sleep(LOCK_RETRY_S)
            latest = self._open.get(incident_id)
            if latest is not None:
                results += await self.consider(latest)
        return results

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("runbook_task_failed", error=repr(task.exception()))

    # -- manual -------------------------------------------------------------
    async def run_manual(
        self,
        name: str,
        target: dict[str, str],
        params: dict[str, str] | None = None,
        dry_run: bool = False,
        actor: str = "manual",
        incident: Incident | None = None,
    ) -> RunResult:
        """Run a playbook by hand (CLI/API): locks, cooldown, budget and breaker apply."""
        lp = self.playbooks.get(name)
        if lp is None:
            raise UnknownPlaybook(name)
        if incident is None:
            incident = synthetic_incident(self.ports.pod, target, "manual", self.ports.clock.now())
        # a person asked: freshness does not apply; everything else does
        req = RunRequest(lp, incident, target, params or {}, actor, dry_run, manual=True)
        return await self.executor.execute(req)

    def cancel(self, run_id: str, actor: str) -> bool:
        """Cancel a run under way in this process; False when none is (by that id)."""
        return self.executor.cancel(run_id, actor)

    def decide(self, run_id: str, approve: bool, actor: str) -> bool:
        """Approve or reject a run waiting for approval; False when none waits by that id."""
        return self.executor.approvals.decide(run_id, approve, actor)

    def reset_breaker(self, actor: str) -> None:
        self.history.reset_breaker(actor, self.ports.clock.now())
        if self.ports.metrics is not None:
            self.ports.metrics.breaker_open.set(0)
        log.warning("breaker_reset", actor=actor)
