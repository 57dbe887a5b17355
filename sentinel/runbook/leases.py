"""Degradation as a lease: a fallback (FP16, a smaller batch) is temporary.

After ``restore_after`` of sustained health (no open incident on the model),
the fields the fallback changed are put back as they were (other changes made
meanwhile are kept) and verified; if the check fails, or the
fault returns while the restore is being watched, the degraded config goes
back on and the wait doubles. After ``MAX_REAPPLY`` tries the lease keeps the
fallback and pages: a person decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from sentinel.runbook.actions.triton import apply_patch, revert_patch
from sentinel.runbook.context import synthetic_incident
from sentinel.runbook.records import Ports
from sentinel.runbook.schema import Verify
from sentinel.runbook.verify import verify
from sentinel.vocabulary.notices import ActionUpdate, PageRequest

log = structlog.get_logger(__name__)
MAX_REAPPLY = 5


class LeaseKeeper:
    """Checks leases on the clock; ``start``/``stop`` run it as a background task."""

    def __init__(self, ports: Ports, unhealthy: Callable[[str], bool]) -> None:
        self.p = ports
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
        triton, now = self.p.triton, self.p.clock.now()
        if triton is None:
            return "no_triton"
        if self.p.dry_run:
            return "dry_run"
        try:
            current = await triton.model_config(lease["model"])
            restored = revert_patch(current, lease["original"], lease["degraded"]["patch"])
            await triton.load_model(lease["model"], restored)
        except Exception as exc:
            self.p.history.update_lease(lease["id"], now, note=f"restore refused: {exc}")
            await self._reapply(lease, f"loading the original config failed: {exc}")
            return "restore_failed"
        ok, evidence = await self._verify(lease)
        if not ok:
            await self._reapply(lease, f"the original config failed verification: {evidence}")
            return "verify_failed"
        now = self.p.clock.now()
        self.p.history.update_lease(lease["id"], now, state="watching", healthy_since=now)
        await self._tell(lease, "restoring", "original config back on and verified; watching")
        return "restored"

    async def _verify(self, lease: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        if lease["verify"] is None or self.p.canary is None:
            return True, {}
        baseline = lease["verify"].get("baseline_p99_s")
        spec = Verify.model_validate({**lease["verify"], "baseline_p99_s": None})
        return await verify(
            spec,
            canary=self.p.canary,
            clock=self.p.clock,
            model=lease["model"],
            baseline=float(baseline) if isinstance(baseline, int | float) else None,
            interval=self.p.settings.canary_interval_s,
        )

    async def _reapply(self, lease: dict[str, Any], why: str) -> None:
        if self.p.dry_run:
            log.info("lease_reapply_skipped", lease=lease["id"], reason="dry run")
            return
        now = self.p.clock.now()
        tries = int(lease["reapplied"]) + 1
        try:
            if self.p.triton is not None:
                current = await self.p.triton.model_config(lease["model"])
                degraded = apply_patch(current, lease["degraded"]["patch"])
                await self.p.triton.load_model(lease["model"], degraded)
        except Exception as exc:
            why = f"{why}; re-applying the fallback failed too: {exc}"
            tries = MAX_REAPPLY + 1
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
