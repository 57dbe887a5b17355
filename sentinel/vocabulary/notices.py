"""What the other stages ask the notify stage to tell people.

(Seed version written by the lead; the notify stage owns and extends it.)
Every event is durable once told: the teller puts it in the outbox before
returning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sentinel.vocabulary.incidents import Incident


@dataclass(frozen=True, slots=True)
class IncidentChanged:
    """An incident opened, escalated, started mitigating, resolved or reopened."""

    incident: Incident
    change: str
    """opened | escalated | mitigating | resolved | reopened | renotify"""


@dataclass(frozen=True, slots=True)
class ActionUpdate:
    """A playbook decision or step, to go into the incident's thread (and a PD change event)."""

    incident: Incident | None
    """None for manual runs not tied to an incident."""
    playbook: str
    run_id: str
    step: str | None
    status: str
    """planned | started | succeeded | failed | skipped | rolled_back | verified | blocked | ..."""
    text: str
    evidence: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    causes: tuple[str, ...] = ()
    """The incident's causes the runbook knows of (routes may match them)."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A human is needed: automation cannot act, failed, was blocked, or it is critical."""

    incident: Incident
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    action: str = "trigger"
    """trigger | acknowledge | resolve (a playbook's pagerduty.* step may ack or resolve)."""
    playbook: str = ""
    """The playbook asking ('' when not a playbook): notifiers route by it."""
    step: str = ""
    """The step asking, or the step a guard refused ('' for the run as a whole)."""
    causes: tuple[str, ...] = ()
    """The incident's causes the runbook knows of (``hardware_thermal``, ...): a route
    may send them to another team."""


Notice = IncidentChanged | ActionUpdate | PageRequest


class Teller(Protocol):
    async def tell(self, notice: Notice) -> None:
        """Durably queue a notice for every configured notifier (returns once stored)."""
        ...
