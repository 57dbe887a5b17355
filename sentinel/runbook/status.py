"""Typed statuses of runs and steps, and which guard refused a run.

``StrEnum`` so the values written to SQLite (and compared in tests and the API) stay
the plain words they always were; decisions compare members, never reason text.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run is, or how it ended."""

    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    """mode approve: the plan was paged; the run waits for a person's decision."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Refused before acting; the next matching playbook may try."""
    BLOCKED = "blocked"
    PAGED = "paged"
    PLANNED = "planned"
    """A dry run: the plan is recorded, nothing with a side effect was called."""
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    """A person cancelled it while it ran; the steps it had applied were rolled back."""
    REJECTED = "rejected"
    """mode approve: a person rejected the plan, or no one decided in time; nothing acted."""


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
    CANCELLED = "cancelled"
    """The run was cancelled while this step (or its verification) was under way."""


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
    APPROVAL = "approval"
    """mode approve: the plan was rejected, or not approved in time."""
    PAUSED = "paused"
    """An operator pause (``sentinel pause``) or ``playbooks.paused`` covers the run."""
