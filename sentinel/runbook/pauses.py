"""Operator pauses: a person stops the automation for a while, for a model, a playbook,
both, or everything on this pod, with a reason and an end.

Stored in SQLite so that the CLI (on the state database) and the API (in the daemon)
see the same pauses, and so that a pause outlives a restart. The executor refuses a
run a pause covers (``Guard.PAUSED``); ``sentinel_automation_paused`` shows each active
one; the config flag ``playbooks.paused`` pauses the whole pod for as long as it is set.
"""

from __future__ import annotations

import builtins
import dataclasses
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from sentinel.base import db
from sentinel.base.duration import parse_duration
from sentinel.base.errors import InputError
from sentinel.vocabulary.notices import Notice, PageRequest, Teller

log = structlog.get_logger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE runbook_pauses (
        id TEXT PRIMARY KEY,
        model TEXT,
        playbook TEXT,
        reason TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        resumed_by TEXT,
        resumed_at REAL
    );
    CREATE INDEX runbook_pauses_ends ON runbook_pauses (ends_at)
    """
]
db.register("runbook_pauses", MIGRATIONS)

MAX_PAUSE_S = 30 * 86400.0
"""A pause longer than a month is forgotten automation, not a pause: refused."""

POD_PAUSE_ID = "config"
"""The id of the standing pause the config flag (or the pod annotation) makes."""

PAUSE_ANNOTATION = "sentinel.dev/paused"
"""The pod annotation that opts a pod out of automation (read from a downward-API file)."""


class PauseError(InputError, ValueError):
    """A pause that cannot be accepted (the message says why)."""


def parse_for(text: str) -> float:
    """``90m``, ``2h``, ``1d``, ``1h30m`` -> seconds (the one duration grammar,
    :mod:`sentinel.base.duration`); PauseError otherwise."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise PauseError(f"for: {exc}") from None


def pause_duration(seconds: Any, text: Any) -> float:
    """A pause's length from ``duration_s`` (a number) or ``for`` (``2h``), exactly one."""
    if (seconds is None) == (text is None):
        raise PauseError("give exactly one of duration_s (seconds) or for (e.g. '2h')")
    if text is not None:
        if not isinstance(text, str):
            raise PauseError("for: must be a string like '2h'")
        return parse_for(text)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise PauseError("duration_s: must be a number of seconds")
    return float(seconds)


@dataclass(frozen=True, slots=True)
class Pause:
    """One pause; ``model``/``playbook`` None: any."""

    id: str
    model: str | None
    playbook: str | None
    reason: str
    created_by: str
    created_at: float
    ends_at: float
    resumed_by: str | None = None
    resumed_at: float | None = None

    def active(self, now: float) -> bool:
        return self.resumed_at is None and now < self.ends_at

    def covers(self, playbook: str, model: str | None) -> bool:
        """Whether a run of ``playbook`` on ``model`` falls under this pause."""
        if self.playbook is not None and self.playbook != playbook:
            return False
        return self.model is None or self.model == model

    @property
    def scope(self) -> str:
        """``all``, ``model=M``, ``playbook=P`` or both, ``config`` for the pod's opt-out
        (the metric's label)."""
        if self.id == POD_PAUSE_ID:
            return "config"
        parts = []
        if self.model is not None:
            parts.append(f"model={self.model}")
        if self.playbook is not None:
            parts.append(f"playbook={self.playbook}")
        return ",".join(parts) or "all"

    def describe(self) -> str:
        """One line for refusals and pages."""
        if self.id == POD_PAUSE_ID:
            return f"automation paused on this pod: {self.reason}"
        return (
            f"automation paused ({self.scope}) by {self.created_by} until {_utc(self.ends_at)}: "
            f"{self.reason} [`sentinel resume {self.id}` ends it]"
        )

    def to_dict(self, now: float) -> dict[str, Any]:
        return {**asdict(self), "scope": self.scope, "active": self.active(now)}


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _row(r: sqlite3.Row) -> Pause:
    return Pause(**{k: r[k] for k in r.keys()})  # noqa: SIM118 -- sqlite3.Row


class PauseStore:
    """Reads and writes the pauses of one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add(
        self,
        *,
        model: str | None,
        playbook: str | None,
        duration_s: float,
        reason: str,
        created_by: str,
        now: float,
    ) -> Pause:
        if not reason.strip():
            raise PauseError("reason: say why automation is paused (it is in every page)")
        if not 0 < duration_s <= MAX_PAUSE_S:
            raise PauseError(f"duration: must be more than 0 s and at most {MAX_PAUSE_S:g} s")
        pause = Pause(
            id=uuid.uuid4().hex[:12],
            model=model or None,
            playbook=playbook or None,
            reason=reason.strip(),
            created_by=created_by,
            created_at=now,
            ends_at=now + duration_s,
        )
        with self.conn:
            self.conn.execute(
                "INSERT INTO runbook_pauses (id, model, playbook, reason, created_by,"
                " created_at, ends_at) VALUES (?,?,?,?,?,?,?)",
                (
                    pause.id,
                    pause.model,
                    pause.playbook,
                    pause.reason,
                    pause.created_by,
                    pause.created_at,
                    pause.ends_at,
                ),
            )
        return pause

    def get(self, pause_id: str) -> Pause | None:
        row = self.conn.execute("SELECT * FROM runbook_pauses WHERE id = ?", (pause_id,)).fetchone()
        return None if row is None else _row(row)

    def list(self, now: float, include_ended: bool = False) -> list[Pause]:
        """Active pauses (or all), newest first."""
        if include_ended:
            rows = self.conn.execute(
                "SELECT * FROM runbook_pauses ORDER BY created_at DESC, rowid DESC"
            ).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM runbook_pauses WHERE resumed_at IS NULL AND ends_at > ?"
                " ORDER BY created_at DESC, rowid DESC",
                (now,),
            ).fetchall()
        return [_row(r) for r in rows]

    def resume(self, pause_id: str, actor: str, now: float) -> Pause:
        """End an active pause now; KeyError when there is no such active pause."""
        pause = self.get(pause_id)
        if pause is None or not pause.active(now):
            raise KeyError(pause_id)
        with self.conn:
            self.conn.execute(
                "UPDATE runbook_pauses SET resumed_by = ?, resumed_at = ? WHERE id = ?",
                (actor, now, pause_id),
            )
        return dataclasses.replace(pause, resumed_by=actor, resumed_at=now)

    def resume_all(self, actor: str, now: float) -> builtins.list[Pause]:
        """End every active pause now."""
        return [self.resume(p.id, actor, now) for p in self.list(now)]


def annotated_paused(path: Path | None) -> bool:
    """The downward-API annotations file sets ``sentinel.dev/paused`` to a true value.

    The file has one ``key="value"`` per line; missing or unreadable: not paused (a pod
    opts out explicitly, it is never opted out by a mount that failed).
    """
    if path is None:
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == PAUSE_ANNOTATION:
            return value.strip().strip('"').lower() in ("true", "1", "yes")
    return False


def pod_pause(paused: bool, annotations: Path | None) -> Pause | None:
    """The standing pause the config flag or the pod annotation makes, if any."""
    if paused:
        why = "playbooks.paused is set in the config"
    elif annotated_paused(annotations):
        why = f"the pod annotation {PAUSE_ANNOTATION} is true"
    else:
        return None
    return Pause(POD_PAUSE_ID, None, None, why, "config", 0.0, float("inf"))


class Pauses:
    """What the executor asks: the pauses in force now (stored ones and the pod's own)."""

    def __init__(
        self,
        store: PauseStore,
        now: Callable[[], float],
        paused: bool = False,
        annotations: Path | None = None,
    ) -> None:
        self.store = store
        self._now = now
        self._paused = paused
        self._annotations = annotations

    def active(self) -> list[Pause]:
        standing = pod_pause(self._paused, self._annotations)
        stored = self.store.list(self._now())
        return stored if standing is None else [standing, *stored]

    def covering(self, playbook: str, model: str | None) -> Pause | None:
        """The pause that stops a run of ``playbook`` on ``model`` (oldest first), or None."""
        hits = [p for p in self.active() if p.covers(playbook, model)]
        return min(hits, key=lambda p: p.created_at) if hits else None


class PausedCollector:
    """``sentinel_automation_paused``: 1 per active pause, labelled by its scope."""

    def __init__(self, active: Callable[[], list[Pause]]) -> None:
        self._active = active

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "sentinel_automation_paused",
            "1 while an operator pause (or playbooks.paused) stops automation, by scope.",
            labels=["scope"],
        )
        try:
            active = self._active()
        except sqlite3.Error:  # one unreadable moment must not fail the whole scrape
            log.exception("pauses_unreadable")
            active = []
        for scope in sorted({p.scope for p in active}):
            family.add_metric([scope], 1.0)
        yield family


class PauseNotingTeller:
    """Passes every notice on; a page while pauses are in force says so (whoever is paged
    must know that sentinel will not act on its own meanwhile)."""

    def __init__(self, inner: Teller, pauses: Pauses) -> None:
        self.inner = inner
        self.pauses = pauses

    async def tell(self, notice: Notice) -> None:
        if isinstance(notice, PageRequest) and notice.action == "trigger":
            notice = self._noted(notice)
        await self.inner.tell(notice)

    def _noted(self, page: PageRequest) -> PageRequest:
        try:
            active = self.pauses.active()
        except Exception:  # a page goes out without its note rather than not at all
            log.exception("pauses_unreadable")
            return page
        # a refusal by a pause already says so in its own words
        untold = [p for p in active if p.describe() not in page.reason]
        if not untold:
            return page
        note = "".join(f" [{p.describe()}]" for p in untold)
        evidence = {**page.evidence, "automation_paused": [p.id for p in active]}
        return dataclasses.replace(page, reason=page.reason + note, evidence=evidence)
