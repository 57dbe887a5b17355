"""Incidents: what sentinel remembers about a problem, across findings and restarts.

(Seed version written by the lead so other stages can code against it; the
incidents stage owns and extends it. Keep these fields and names stable.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from sentinel.vocabulary.findings import Severity, Subject


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
    """Evidence of the latest finding (its batch size, if any, under ``batch_size``)."""
    silenced_by: str | None = None
    """Id of the silence muting its pages, if any."""
    # -- added by the incidents stage --------------------------------------
    pod: str = ""
    inhibited_by: str | None = None
    """Id of an open incident that explains this one (e.g. server down), muting its pages."""
    group: str | None = None
    """Id of the first open incident on the same model or GPU (related findings)."""
    detector: str = ""
    last_seen_at: float | None = None
    """Latest finding (or re-confirmation) of the condition."""
    clear_pending_at: float | None = None
    """A Cleared arrived then; resolution waits out the hysteresis hold."""
    confirm_by: float | None = None
    """After a restart: resolve unless a detector re-confirms it by then."""
    notified_at: float | None = None
    """Last time people were told (drives the re-notify interval)."""
    reopened: int = 0
    """How many times a re-fire within the window reopened it."""
    findings: int = 1
    """Findings folded into it."""

    @property
    def open(self) -> bool:
        return self.status is not IncidentStatus.RESOLVED

    @property
    def muted(self) -> bool:
        """Silenced or inhibited: recorded and told to Slack, never paged."""
        return self.silenced_by is not None or self.inhibited_by is not None

    def labels(self) -> dict[str, str]:
        """Matchable labels (silences, Alertmanager): only the parts that are set."""
        out = {"pod": self.pod, "kind": self.kind, "severity": self.severity.value}
        out["key"] = self.key
        s = self.subject
        for name, value in (("model", s.model), ("version", s.version), ("gpu_uuid", s.gpu_uuid)):
            if value is not None:
                out[name] = value
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the store's and the API's)."""
        d = asdict(self)
        d["severity"] = self.severity.value
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Incident:
        data = dict(d)
        data["severity"] = Severity(data["severity"])
        data["status"] = IncidentStatus(data["status"])
        data["subject"] = Subject(**data["subject"])
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})
