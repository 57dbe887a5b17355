"""What happened during the demo, when, and for which fault.

Every stage's output is tapped into one :class:`Timeline`; it prints each
event as it happens and later answers "how long did detection take?".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from sentinel.base.logging import colors_wanted

STAGE_MARK = {
    "fault": "⚡",
    "finding": "🔎",
    "incident": "📋",
    "step": "🔧",
    "verify": "✅",
    "skip": "⛔",
    "notify": "💬",
    "page": "📟",
    "info": "  ",
    "resolved": "🟢",
}


@dataclass(frozen=True, slots=True)
class Event:
    t: float
    """Seconds since the demo started."""
    stage: str
    text: str
    fault: str | None = None


@dataclass
class FaultWindow:
    """One scripted fault and what sentinel did about it."""

    name: str
    description: str
    expected: str
    """What 'mitigated as expected' means here, in words."""
    injected_at: float | None = None
    detected_at: float | None = None
    mitigated_at: float | None = None
    """When the fix was verified (or the expected refusal + page was sent)."""
    actions: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    ok: bool = False
    note: str = ""

    @property
    def time_to_detect(self) -> float | None:
        if self.injected_at is None or self.detected_at is None:
            return None
        return self.detected_at - self.injected_at

    @property
    def time_to_mitigate(self) -> float | None:
        if self.injected_at is None or self.mitigated_at is None:
            return None
        return self.mitigated_at - self.injected_at


class Timeline:
    """An append-only list of events, echoed live to a terminal."""

    def __init__(self, start: float, stream: TextIO | None = None, color: bool | None = None):
        self.start = start
        self.events: list[Event] = []
        self.current: FaultWindow | None = None
        self._stream = stream or sys.stdout
        # a terminal gets color unless NO_COLOR is set (no-color.org)
        self._color = self._stream.isatty() and colors_wanted() if color is None else color

    def add(self, now: float, stage: str, text: str) -> Event:
        event = Event(now - self.start, stage, text, self.current.name if self.current else None)
        self.events.append(event)
        mark = STAGE_MARK.get(stage, "  ")
        label = f"[{event.fault}]" if event.fault else ""
        line = f"{event.t:7.2f}s {mark} {stage:<8} {label:<12} {text}"
        if self._color and stage in ("page", "skip"):
            line = f"\033[33m{line}\033[0m"
        elif self._color and stage in ("verify", "resolved"):
            line = f"\033[32m{line}\033[0m"
        print(line, file=self._stream, flush=True)
        return event
