"""Incidents: what sentinel remembers about a problem, across findings and restarts.

(Seed version written by the lead so other stages can code against it; the
incidents stage owns and extends it. Keep these fields and names stable.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sentinel.detect.findings import Severity, Subject


class IncidentStatus(StrEnum):
    FIRING = "firing"
    MITIGATING = "mitigating"
    RESOLVED = "resolved"


@dataclass(slots=True)
class Incident:
    """One problem on one subject, deduplicated by ``key``."""

    id: str
    """Stable id (also the idempotency root for notifications)."""
    key: str
    """Dedup key: ``{pod}/{model}:{version}/{kind}[/{gpu_uuid}]``."""
    kind: str
    severity: Severity
    subject: Subject
    status: IncidentStatus
    summary: str
    started_at: float
    """Onset of the first finding."""
    detected_at: float
    updated_at: float
    resolved_at: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    """Evidence of the latest finding."""
    silenced_by: str | None = None
    """Id of the silence muting its pages, if any."""
