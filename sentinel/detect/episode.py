"""One condition's life: pending -> open (a Finding) -> clearing -> closed (a Cleared).

Each detector keeps one :class:`Episode` per (kind, subject), so at most one finding is
open for it at a time. Breach and clear levels are separate (hysteresis): a breach
opens a pending episode, which fires once it has lasted ``min_duration_s`` and
``min_samples`` without falling back under the clear level; an open one closes after
``clear_duration_s`` and ``clear_samples`` under the clear level.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sentinel.vocabulary.findings import Cleared, Finding, Judgement, Severity, Subject


class Phase(enum.Enum):
    IDLE = "idle"
    PENDING = "pending"
    OPEN = "open"


@dataclass(slots=True)
class Episode:
    """Sustain and hysteresis for one (kind, subject)."""

    kind: str
    subject: Subject
    detector: str
    min_duration_s: float = 0.0
    min_samples: int = 1
    clear_duration_s: float = 0.0
    clear_samples: int = 1
    phase: Phase = Phase.IDLE
    started_at: float | None = None
    """Onset: first sample of the current breach."""
    breach_count: int = 0
    good_since: float | None = None
    good_count: int = 0
    finding: Finding | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Detector-specific memory (e.g. last healthy time)."""

    @property
    def is_open(self) -> bool:
        return self.phase is Phase.OPEN

    @property
    def is_active(self) -> bool:
        """Pending or open: the condition currently holds or has not cleared yet."""
        return self.phase is not Phase.IDLE

    def update(
        self,
        ts: float,
        breached: bool,
        recovered: bool,
        fire: Callable[[float, float], tuple[Severity, str, dict[str, Any]]],
        clear_evidence: Callable[[], dict[str, Any]] | None = None,
        sustained_since: float | None = None,
    ) -> Judgement | None:
        """Feed one sample's verdict; returns a Finding or Cleared when the state changes.

        ``breached``: the sample meets the firing condition. ``recovered``: it is below the
        (lower) clear level. ``fire(started_at, ts)`` builds severity, summary, evidence.
        ``sustained_since``: the caller's own test (a sequential one, which weighs every
        sample since the change began) already holds the breach as sustained since then;
        it fires now, with that onset, whatever ``min_duration_s`` and ``min_samples`` say.
        """
        if self.phase is Phase.IDLE:
            if breached:
                self.phase = Phase.PENDING
                self.started_at = ts
                self.breach_count = 0
            else:
                return None
        if self.phase is Phase.PENDING:
            # a pending breach survives dips into the hysteresis band, not a recovery
            if not breached and recovered:
                self._reset()
                return None
            self.breach_count += 1
            assert self.started_at is not None
            sustained = breached and sustained_since is not None
            if sustained and sustained_since is not None:
                self.started_at = min(self.started_at, sustained_since)
            if sustained or (
                self.breach_count >= self.min_samples
                and ts - self.started_at >= self.min_duration_s
            ):
                severity, summary, evidence = fire(self.started_at, ts)
                self.phase = Phase.OPEN
                self.good_since = None
                self.good_count = 0
                self.finding = Finding(
                    kind=self.kind,
                    severity=severity,
                    subject=self.subject,
                    started_at=self.started_at,
                    detected_at=ts,
                    summary=summary,
                    evidence=json_safe(evidence),
                    detector=self.detector,
                )
                return self.finding
            return None
        # OPEN: close only after a sustained recovery
        if not recovered:
            self.good_since = None
            self.good_count = 0
            return None
        if self.good_since is None:
            self.good_since = ts
        self.good_count += 1
        if self.good_count >= self.clear_samples and ts - self.good_since >= self.clear_duration_s:
            return self.close(ts, clear_evidence() if clear_evidence else {})
        return None

    def open_now(
        self, ts: float, severity: Severity, summary: str, evidence: dict[str, Any]
    ) -> Finding | None:
        """Open at once (events such as a lost GPU); None when already open."""
        if self.phase is Phase.OPEN:
            return None
        self.phase = Phase.OPEN
        self.started_at = ts
        self.good_since = None
        self.good_count = 0
        self.finding = Finding(
            kind=self.kind,
            severity=severity,
            subject=self.subject,
            started_at=ts,
            detected_at=ts,
            summary=summary,
            evidence=json_safe(evidence),
            detector=self.detector,
        )
        return self.finding

    def close(self, ts: float, evidence: dict[str, Any]) -> Cleared | None:
        """Close an open finding now; None when nothing is open."""
        if self.phase is not Phase.OPEN:
            self._reset()
            return None
        cleared = Cleared(
            kind=self.kind,
            subject=self.subject,
            cleared_at=ts,
            evidence=json_safe({"started_at": self.started_at, **evidence}),
            detector=self.detector,
        )
        self._reset()
        return cleared

    def _reset(self) -> None:
        self.phase = Phase.IDLE
        self.started_at = None
        self.breach_count = 0
        self.good_since = None
        self.good_count = 0
        self.finding = None


class Episodes:
    """The episodes of one detector, created on first use."""

    def __init__(self, detector: str) -> None:
        self.detector = detector
        self._by_key: dict[tuple[str, Subject], Episode] = {}

    def get(self, kind: str, subject: Subject, **timing: Any) -> Episode:
        key = (kind, subject)
        ep = self._by_key.get(key)
        if ep is None:
            ep = Episode(kind=kind, subject=subject, detector=self.detector, **timing)
            self._by_key[key] = ep
        return ep

    def find(self, kind: str, subject: Subject) -> Episode | None:
        """The episode of (kind, subject) if one was ever created."""
        return self._by_key.get((kind, subject))

    def open(self) -> list[Episode]:
        return [e for e in self._by_key.values() if e.is_open]


def json_safe(evidence: dict[str, Any]) -> dict[str, Any]:
    """Evidence as strict JSON: non-finite numbers (from odd probe readings) become None."""
    return {str(k): _safe(v) for k, v in evidence.items()}


def _safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return value
