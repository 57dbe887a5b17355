"""What a run tells and counts: notices to the teller, pages, metrics, the incident's
status. Failures to tell are logged, never raised: a run goes on without its notices.
"""

from __future__ import annotations

from typing import Any

import structlog

from sentinel.runbook.context import incident_causes
from sentinel.runbook.records import Ports, RunRequest
from sentinel.vocabulary.notices import ActionUpdate, IncidentChanged, PageRequest

log = structlog.get_logger(__name__)


class RunReporter:
    """Tells the teller and the metrics what a run does; one per executor."""

    def __init__(self, ports: Ports) -> None:
        self.p = ports

    def count(self, playbook: str, outcome: str, guard: str) -> None:
        """A run ended (or was refused by ``guard``): the run and block counters."""
        m = self.p.metrics
        if m is None:
            return
        m.runs.labels(playbook, outcome).inc()
        if guard:
            m.blocks.labels(playbook, guard).inc()
        if guard == "budget":
            m.budget_exhausted.labels(playbook).set(1)

    def count_action(self, action: str, outcome: str) -> None:
        """An action was called: succeeded or failed."""
        if self.p.metrics is not None:
            self.p.metrics.actions.labels(action, outcome).inc()

    async def tell_change(self, change: IncidentChanged) -> None:
        """Pass on an incident change the run caused (it now mitigates)."""
        if self.p.teller is None:
            return
        try:
            await self.p.teller.tell(change)
        except Exception:
            log.exception("tell_failed", incident=change.incident.id)

    def back_to_firing(self, req: RunRequest) -> None:
        """The run did not fix it: the incident fires again."""
        if self.p.incidents is None:
            return
        try:
            self.p.incidents.mark_firing(req.incident.id)
        except Exception:
            log.exception("mark_firing_failed", incident=req.incident.id)

    async def tell(
        self,
        req: RunRequest,
        run_id: str,
        step: str | None,
        status: str,
        text: str,
        evidence: dict[str, Any],
        dry: bool,
    ) -> None:
        """An update on the run (or one step) for the notifiers; a dry run tells no one."""
        if dry or self.p.teller is None:
            return  # a dry run tells no one: the plan is in the log and the run record
        incident = None if req.manual else req.incident
        notice = ActionUpdate(
            incident,
            req.loaded.playbook.name,
            run_id,
            step,
            status,
            text,
            evidence,
            causes=incident_causes(req.incident),
        )
        try:
            await self.p.teller.tell(notice)
        except Exception:
            log.exception("tell_failed", run_id=run_id)

    async def page(
        self,
        req: RunRequest,
        run_id: str,
        reason: str,
        evidence: dict[str, Any],
        dry: bool,
        step: str = "",
    ) -> None:
        """Ask for a human: a page naming the run, the step (if one), why, and the
        incident's causes (notifiers route by playbook, step and cause)."""
        log.warning("page" if not dry else "would_page", run_id=run_id, reason=reason)
        if dry or self.p.teller is None:
            return
        try:
            await self.p.teller.tell(
                PageRequest(
                    req.incident,
                    reason,
                    {"run_id": run_id, "playbook": req.loaded.playbook.name, **evidence},
                    playbook=req.loaded.playbook.name,
                    step=step,
                    causes=incident_causes(req.incident),
                )
            )
        except Exception:
            log.exception("page_failed", run_id=run_id)
