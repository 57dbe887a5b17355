"""Degradation as a lease: a fallback (FP16, a smaller batch) is temporary.

After ``restore_after`` of sustained health (no open incident on the model),
the fields the fallback changed are put back as they were (other changes made
meanwhile are kept) and verified; if the check fails, or the
fault returns while the restore is being watched, the degraded config goes
back on and the wait doubles. After ``MAX_REAPPLY`` tries the lease keeps the
fallback and pages: a person decides.

Restores and re-applies are runs of the executor (one-step playbooks built here),
never calls to Triton from this module: the target lock, the breaker (their steps
count), the step timeout, the fleet guard, the cause refusals and the run records
apply to them as to any playbook. A restore refused by the lock waits for the next
check; one refused by another guard waits a whole healthy period again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

import structlog

from sentinel.runbook.causes import Cause
from sentinel.runbook.context import synthetic_incident
from sentinel.runbook.executor import Executor
from sentinel.runbook.records import Ports, RunRequest, RunResult
from sentinel.runbook.schema import LoadedPlaybook, Playbook
from sentinel.runbook.status import Guard, RunStatus, StepStatus
from sentinel.vocabulary.notices import ActionUpdate, PageRequest

log = structlog.get_logger(__name__)
MAX_REAPPLY = 5
STEP_TIMEOUT_S = 120.0
"""Deadline of one restore or re-apply (a model reload)."""
RESTORE = "lease-restore"
REAPPLY = "lease-reapply"


class LeaseKeeper:
    """Checks leases on the clock; ``start``/``stop`` run it as a background task."""

    def __init__(self, ports: Ports, executor: Executor, unhealthy: Callable[[str], bool]) -> None:
        self.p = ports
        self.executor = executor
        self._unhealthy = unhealthy
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="runbook-leases")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await self.p.clock.sleep(self.p.settings.lease_check_interval_s)
            try:
                await self.tick()
            except Exception:
                log.exception("lease_tick_failed")

    async def fault(self, model: str) -> None:
        """The model has a new problem: restart its health clock, re-apply if just restored."""
        now = self.p.clock.now()
        for lease in self.p.history.leases():
            if lease["model"] != model:
                continue
            if lease["state"] == "watching":
                await self._reapply(lease, "the fault came back after the restore")
            else:
                self.p.history.update_lease(lease["id"], now, healthy_since=now)

    async def tick(self) -> list[dict[str, Any]]:
        """One pass over the leases; returns what changed (for logs and tests)."""
        now = self.p.clock.now()
        changed: list[dict[str, Any]] = []
        leases = self.p.history.leases()
        if self.p.metrics is not None:
            self.p.metrics.leases_active.set(len(leases))
        for lease in leases:
            if self._unhealthy(lease["model"]):
                if lease["state"] == "watching":
                    await self._reapply(lease, "the fault came back after the restore")
                    changed.append({"id": lease["id"], "event": "reapplied"})
                else:
                    self.p.history.update_lease(lease["id"], now, healthy_since=now)
                continue
            healthy_for = now - lease["healthy_since"]
            if healthy_for < lease["restore_after"]:
                continue
            if lease["state"] == "watching":
                self.p.history.update_lease(lease["id"], now, state="restored")
                await self._tell(lease, "restored", "original config held; lease closed")
                changed.append({"id": lease["id"], "event": "closed"})
            else:
                event = await self._restore(lease)
                changed.append({"id": lease["id"], "event": event})
        return changed

    async def _restore(self, lease: dict[str, Any]) -> str:
        if self.p.triton is None:
            return "no_triton"
        if self.p.dry_run:
            return "dry_run"
        loaded = _restore_playbook(lease, verifiable=self.p.canary is not None)
        result = await self.executor.execute(self._request(lease, loaded))
        now = self.p.clock.now()
        if result.refused_by is not None:
            return self._deferred(lease, result)
        if result.status == RunStatus.SUCCEEDED:
            self.p.history.update_lease(lease["id"], now, state="watching", healthy_since=now)
            await self._tell(lease, "restoring", "original config back on and verified; watching")
            return "restored"
        rolled_back = _phase_status(result, "rollback") == StepStatus.ROLLED_BACK
        if rolled_back:  # the run's rollback re-applied the fallback already
            why = f"the original config failed verification: {result.reason}"
            await self._reapplied(lease, why)
            return "verify_failed"
        # the reload failed or timed out (or its rollback did): put the fallback back on
        self.p.history.update_lease(lease["id"], now, note=f"restore failed: {result.reason}")
        await self._reapply(lease, f"restoring the original config failed: {result.reason}")
        return "restore_failed"

    def _deferred(self, lease: dict[str, Any], result: RunResult) -> str:
        """A guard refused the restore: the lock means try at the next check, any other
        guard (breaker, cause, fleet) a whole healthy period from now."""
        now = self.p.clock.now()
        note = f"restore deferred by the {result.refused_by} guard: {result.reason}"
        if result.refused_by is Guard.LOCK:
            self.p.history.update_lease(lease["id"], now, note=note)
        else:
            self.p.history.update_lease(lease["id"], now, note=note, healthy_since=now)
        log.info("lease_deferred", lease=lease["id"], guard=result.refused_by)
        return "deferred"

    def _request(self, lease: dict[str, Any], loaded: LoadedPlaybook) -> RunRequest:
        target = {"model": str(lease["model"])}
        incident = synthetic_incident(self.p.pod, target, "lease", self.p.clock.now())
        return RunRequest(
            loaded, incident, target, actor=f"lease:{lease['id']}", manual=True, lease=lease
        )

    async def _reapply(self, lease: dict[str, Any], why: str) -> None:
        if self.p.dry_run:
            log.info("lease_reapply_skipped", lease=lease["id"], reason="dry run")
            return
        result = await self.executor.execute(self._request(lease, _reapply_playbook(lease)))
        if result.refused_by in (Guard.LOCK, Guard.PAUSED):
            # another run acts on the model now, or a person paused automation: the next
            # check (still unhealthy) tries again
            note = f"{why}; re-apply waits: {result.reason}"
            self.p.history.update_lease(lease["id"], self.p.clock.now(), note=note)
            return
        if result.status != RunStatus.SUCCEEDED:
            await self._reapplied(
                lease, f"{why}; re-applying the fallback failed too: {result.reason}", give_up=True
            )
            return
        await self._reapplied(lease, why)

    async def _reapplied(self, lease: dict[str, Any], why: str, give_up: bool = False) -> None:
        """The fallback is back on (or could not be put back): count it, double the wait."""
        now = self.p.clock.now()
        tries = MAX_REAPPLY + 1 if give_up else int(lease["reapplied"]) + 1
        if tries > MAX_REAPPLY:
            self.p.history.update_lease(lease["id"], now, state="kept", reapplied=tries, note=why)
            await self._page(lease, f"lease on {lease['model']} gave up restoring: {why}")
            return
        self.p.history.update_lease(
            lease["id"],
            now,
            state="active",
            reapplied=tries,
            healthy_since=now,
            restore_after=float(lease["restore_after"]) * 2,
            note=why,
        )
        await self._tell(lease, "reapplied", f"fallback re-applied ({why}); next try in 2x")

    async def _tell(self, lease: dict[str, Any], status: str, text: str) -> None:
        log.info("lease_" + status, lease=lease["id"], model=lease["model"], text=text)
        if self.p.teller is None:
            return
        try:
            await self.p.teller.tell(
                ActionUpdate(None, lease["playbook"], lease["run_id"], lease["step"], status, text)
            )
        except Exception:
            log.exception("tell_failed", lease=lease["id"])

    async def _page(self, lease: dict[str, Any], reason: str) -> None:
        log.warning("page", lease=lease["id"], reason=reason)
        if self.p.teller is None:
            return
        incident = synthetic_incident(
            self.p.pod, {"model": lease["model"]}, "lease", self.p.clock.now()
        )
        try:
            await self.p.teller.tell(PageRequest(incident, reason, {"lease": lease["id"]}))
        except Exception:
            log.exception("page_failed", lease=lease["id"])


_LEASE_GUARDS = {"cooldown": 0, "budget": {"runs": 1_000_000, "per": 1}}
"""Lease runs keep their own count (``MAX_REAPPLY``); the breaker and lock still apply."""


def _restore_playbook(lease: dict[str, Any], verifiable: bool) -> LoadedPlaybook:
    """One step: put back the fields the fallback changed, verified as the fallback was.

    No cause is allowed: a restore waits for a GPU free of hardware slowdowns (its
    verification would judge the original config on a braked GPU).
    """
    step: dict[str, Any] = {
        "name": "restore",
        "action": "triton.restore_config",
        "with": {
            "model": "{{ lease.model }}",
            "original": "{{ lease.original }}",
            "patch": "{{ lease.degraded.patch }}",
        },
        "timeout": STEP_TIMEOUT_S,
    }
    if lease["verify"] is not None and verifiable:  # no canary runner: nothing to check with
        step["verify"] = lease["verify"]
    return _internal(RESTORE, "Restore a lease's original config, verify it.", step)


def _reapply_playbook(lease: dict[str, Any]) -> LoadedPlaybook:
    """One step: the verified fallback goes back on, whatever the cause now."""
    step = {
        "name": "reapply",
        "action": "triton.load_model",
        "with": {"model": "{{ lease.model }}", "patch": "{{ lease.degraded.patch }}"},
        "timeout": STEP_TIMEOUT_S,
        "rollback": "none",
        "allow_causes": [str(c) for c in Cause],
        "because": (
            "re-applying puts back a fallback that already verified on this model; it makes "
            "the model lighter, whatever the GPU's state"
        ),
    }
    return _internal(REAPPLY, "Re-apply a lease's verified fallback.", step)


def _internal(name: str, description: str, step: dict[str, Any]) -> LoadedPlaybook:
    playbook = Playbook.model_validate(
        {"name": name, "description": description, "guards": _LEASE_GUARDS, "steps": [step]}
    )
    digest = hashlib.sha256(json.dumps(step, sort_keys=True, default=str).encode()).hexdigest()
    return LoadedPlaybook(playbook=playbook, path="sentinel/runbook/leases.py", sha256=digest)


def _phase_status(result: RunResult, phase: str) -> str | None:
    """The status of the run's last step row of this phase (verify, rollback)."""
    rows = [r for r in result.steps if r["phase"] == phase]
    return str(rows[-1]["status"]) if rows else None
