"""Protocols the executor's guards consult, and the pure checks they make.

The executor (engine.py) is the one place that calls these; playbooks only
declare parameters (cooldown, budget, blocked_if).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sentinel.runbook.causes import active_causes
from sentinel.runbook.pauses import Pause
from sentinel.runbook.schema import Gate, Step, Trigger
from sentinel.runbook.status import Guard, RunStatus
from sentinel.runbook.templating import TemplateFailure, condition
from sentinel.vocabulary.findings import Severity
from sentinel.vocabulary.incidents import Incident, IncidentStatus
from sentinel.vocabulary.notices import IncidentChanged


class FleetGuard(Protocol):
    """Asked before a disruptive action (restart, eviction) anywhere in the fleet.

    ``LeaseFleetGuard`` (``runbook/fleet.py``) shares a budget through a Kubernetes
    Lease; False means "too many replicas are being disrupted now": page instead.
    """

    async def acquire(self, action: str, target: str) -> bool: ...


class AllowAllGuard:
    """The fleet guard outside Kubernetes: a single sentinel, nothing to coordinate."""

    async def acquire(self, action: str, target: str) -> bool:
        return True

    async def report(self, degraded: bool) -> None:
        """Nothing to share."""

    async def aclose(self) -> None:
        """Nothing to close."""


class IncidentMarker(Protocol):
    """What the runbook needs of the incident manager (``IncidentManager`` fits)."""

    def mark_mitigating(
        self, incident_id: str, playbook: str = "", run_id: str = ""
    ) -> list[IncidentChanged]:
        """A run took the incident; the changes are told through the teller."""
        ...

    def mark_firing(self, incident_id: str) -> None:
        """Mitigation gave up (the engine pages on its own)."""
        ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """A guard's decision to stop a run: status for the record, why, and whether to page."""

    status: RunStatus
    reason: str
    page: bool = False
    guard: Guard | None = None
    """Which guard decided (metrics label, and what callers branch on; never the reason)."""


def trigger_matches(trigger: Trigger, incident: Incident) -> bool:
    """Kind, severity and subject globs (the ``for:`` and age checks come later)."""
    if incident.kind not in trigger.kinds:
        return False
    if Severity(incident.severity).rank < trigger.min_severity.rank:
        return False
    subject = {
        "model": incident.subject.model,
        "version": incident.subject.version,
        "batch_size": incident.subject.batch_size,
        "gpu_uuid": incident.subject.gpu_uuid,
    }
    for field, pattern in trigger.subject.items():
        value = subject.get(field)
        if value is None or not fnmatch.fnmatchcase(str(value), pattern):
            return False
    return True


def freshness(incident: Incident, now: float, max_age: float) -> Verdict | None:
    """Never act on a cleared incident or on one whose evidence is too old."""
    if incident.status == IncidentStatus.RESOLVED:
        return cleared(incident)
    latest = max(incident.detected_at, incident.updated_at)
    age = now - latest
    if age > max_age:
        reason = f"finding is {age:.0f} s old (max {max_age:.0f} s): stale"
        return Verdict(RunStatus.SKIPPED, reason, guard=Guard.STALE)
    return None


def first_gate(gates: list[Gate], context: Mapping[str, Any]) -> Verdict | None:
    """The first cause-aware gate that holds; an unreadable gate blocks (do no harm)."""
    for gate in gates:
        try:
            if condition(gate.when, context):
                return Verdict(RunStatus.BLOCKED, f"{gate.reason} ({gate.when})", True, Guard.GATE)
        except TemplateFailure as exc:
            why = f"{gate.reason}: gate could not be checked: {exc}"
            return Verdict(RunStatus.BLOCKED, why, True, Guard.GATE)
    return None


def cleared(incident: Incident) -> Verdict:
    """The finding cleared before the run acted: refuse, and page saying what it was."""
    return Verdict(
        RunStatus.SKIPPED,
        f"incident {incident.key} has cleared before the run acted; nothing was changed "
        f"({incident.summary})",
        page=True,
        guard=Guard.CLEARED,
    )


def cause_refusal(step: Step, mutating: bool, context: Mapping[str, Any]) -> Verdict | None:
    """The executor's default: a changing step never acts on a cause it cannot fix.

    Refused causes (``causes.Cause``) the step does not name in ``allow_causes`` stop it;
    steps that change nothing (diagnostics, pages, waits) are never refused.
    """
    if not mutating:
        return None
    incident = context.get("incident") or {}
    found = active_causes(
        str(incident.get("kind") or ""),
        context.get("evidence") or {},
        context.get("cause") or {},
    )
    refused = {c: why for c, why in found.items() if c not in step.allow_causes}
    if not refused:
        return None
    names = ", ".join(refused)
    why = "; ".join(refused.values())
    return Verdict(
        RunStatus.BLOCKED,
        f"{why} [cause: {names}; a step may allow it with allow_causes + because]",
        page=True,
        guard=Guard.CAUSE,
    )


def paused(pause: Pause, playbook: str, key: str, page: bool) -> Verdict:
    """An operator pause covers the run: refuse, recorded; paged once per pause and incident."""
    return Verdict(
        RunStatus.SKIPPED,
        f"{pause.describe()}; {playbook} would have run on {key}, nothing was changed",
        page=page,
        guard=Guard.PAUSED,
    )
