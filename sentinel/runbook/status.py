"""Typed statuses of runs and steps, and which guard refused a run.

``StrEnum`` so the values written to SQLite (and compared in tests and the API) stay
the plain words they always were; decisions compare members, never reason text.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run is, or how it ended."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Refused before acting; the next matching playbook may try."""
    BLOCKED = "blocked"
    PAGED = "paged"
    PLANNED = "planned"
    """A dry run: the plan is recorded, nothing with a side effect was called."""
    INTERRUPTED = "interrupted"


class StepStatus(StrEnum):
    """One step's row in ``runbook_steps`` (verify and rollback rows included)."""

    PENDING = "pending"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    BLOCKED = "blocked"
    PLANNED = "planned"
    VERIFIED = "verified"
    VERIFY_FAILED = "verify_failed"
    ROLLED_BACK = "rolled_back"
    INTERRUPTED = "interrupted"


class Guard(StrEnum):
    """Which guard stopped a run or a step (the ``guard`` label of the block metric)."""

    DISABLED = "disabled"
    STALE = "stale"
    CLEARED = "cleared"
    WHEN = "when"
    BREAKER = "breaker"
    COOLDOWN = "cooldown"
    BUDGET = "budget"
    GATE = "gate"
    CAUSE = "cause"
    LOCK = "lock"
    FLEET = "fleet"
