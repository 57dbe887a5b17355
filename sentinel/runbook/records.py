"""What one run is made of: its request, its result, and the ports it may use.

Shared by the executor (the run), the step runner (one step), rollback and the
lease keeper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sentinel.base.clock import Clock
from sentinel.runbook.actions.base import ActionContext
from sentinel.runbook.guards import FleetGuard, IncidentMarker, Verdict
from sentinel.runbook.history import History
from sentinel.runbook.metrics import RunbookMetrics
from sentinel.runbook.pauses import Pauses
from sentinel.runbook.schema import LoadedPlaybook
from sentinel.runbook.settings import RunbookSettings
from sentinel.runbook.status import Guard, RunStatus
from sentinel.vocabulary.incidents import Incident
from sentinel.vocabulary.notices import Teller
from sentinel.vocabulary.ports import CanaryRunner, Facts, TritonControl

LOCKED = "is already acting on"
"""Words of the reason of a run the target's lock refused (for people; code reads
``RunResult.refused_by``)."""


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
    cleared: Callable[[str], bool] | None = None
    """Whether an incident (by id) has cleared since it was matched (asked before step one)."""
    pauses: Pauses | None = None
    """Operator pauses and the pod's opt-out (asked before each automatic run)."""

    def dry_everywhere(self) -> bool:
        """The global dry run: a second, structural check where actions are called."""
        return self.dry_run or self.settings.dry_run

    def action_context(self, req: RunRequest, run_id: str, step: str) -> ActionContext:
        """What an action called for ``step`` of this run may use."""
        return ActionContext(
            clock=self.clock,
            settings=self.settings,
            incident=req.incident,
            playbook=req.loaded.playbook.name,
            run_id=run_id,
            step=step,
            pod=self.pod,
            triton=self.triton,
            canary=self.canary,
            facts=self.facts,
            teller=self.teller,
        )


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
    """Asked for by a person or by sentinel itself (a lease): no freshness or cleared check."""
    lease: dict[str, Any] | None = None
    """The lease a restore or re-apply run acts for (``lease`` in templates)."""


@dataclass(slots=True)
class RunResult:
    """What happened; ``steps`` as recorded."""

    run_id: str
    playbook: str
    status: RunStatus
    reason: str
    dry_run: bool
    steps: list[dict[str, Any]] = field(default_factory=list)
    refused_by: Guard | None = None
    """The guard that stopped the run, before its steps or at one (None: it ran its course)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "playbook": self.playbook,
            "status": self.status,
            "reason": self.reason,
            "dry_run": self.dry_run,
            "steps": self.steps,
        }


class Abort(Exception):
    """Stop the run now with this verdict (breaker opened mid-run); control flow, not a fault."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict
