"""What detectors say: a finding opens, a cleared event closes it.

Both carry their evidence (the numbers that made the decision) so that every
later stage -- incidents, playbooks, Slack, PagerDuty -- can explain itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return ("info", "warning", "critical").index(self.value)


@dataclass(frozen=True, slots=True)
class Subject:
    """What a finding is about. Unset parts are None."""

    model: str | None = None
    version: str | None = None
    batch_size: int | None = None
    gpu_uuid: str | None = None

    def key(self) -> str:
        """Stable text form, e.g. ``digits:1/bs8/GPU-abc``."""
        parts = []
        if self.model is not None:
            parts.append(f"{self.model}:{self.version or '*'}")
        if self.batch_size is not None:
            parts.append(f"bs{self.batch_size}")
        if self.gpu_uuid is not None:
            parts.append(self.gpu_uuid)
        return "/".join(parts) or "-"


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector's judgement that something is wrong, with why."""

    kind: str
    """e.g. latency_spike, gpu_oom, gpu_oom_predicted, thermal_throttle, power_brake,
    accuracy_drift, error_burst, server_unhealthy, model_not_ready, gpu_lost, xid_hardware,
    backlog."""
    severity: Severity
    subject: Subject
    started_at: float
    """Onset of the condition (first sample that met it), epoch seconds."""
    detected_at: float
    """The sample at which the detector fired, epoch seconds."""
    summary: str
    """One human sentence, e.g. 'p99 latency 412 ms > SLO 250 ms for 30 s'."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """Values, baseline, threshold, sample count, window -- JSON-ready."""
    detector: str = ""


@dataclass(frozen=True, slots=True)
class Cleared:
    """The condition behind an earlier finding has gone (after hysteresis)."""

    kind: str
    subject: Subject
    cleared_at: float
    evidence: dict[str, Any] = field(default_factory=dict)
    detector: str = ""


Judgement = Finding | Cleared
