"""Silences and maintenance windows: mute pages for incidents matching labels.

Alertmanager's model: every silence has matchers, an author, a comment and an
end; a maintenance window is a silence that starts in the future. Muted
incidents are still recorded (store, audit, Slack) -- only pages stop.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from sentinel.base import db
from sentinel.base.errors import InputError

MIGRATIONS = [
    """
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        comment TEXT NOT NULL,
        created_at REAL NOT NULL,
        expired_at REAL
    );
    CREATE INDEX silences_ends ON silences(ends_at)
    """
]
db.register("silences", MIGRATIONS)

_OPS = ("=~", "!~", "!=", "=")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SilenceError(InputError, ValueError):
    """A silence or matcher that cannot be accepted (the message says why)."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """``name op value`` with op one of ``=``, ``!=``, ``=~``, ``!~`` (regex: full match)."""

    name: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse ``model=resnet50``, ``kind=~latency.*`` ... ; raises SilenceError."""
        for op in _OPS:
            name, sep, value = text.partition(op)
            if sep and "=" not in name and "!" not in name:
                name = name.strip()
                if not _NAME.match(name):
                    raise SilenceError(f"matcher {text!r}: bad label name {name!r}")
                m = cls(name, op, value.strip().strip('"'))
                m._check()
                return m
        raise SilenceError(f"matcher {text!r}: expected name=value, !=, =~ or !~")

    def _check(self) -> None:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise SilenceError(f"matcher {self}: bad regex: {exc}") from exc

    def matches(self, labels: dict[str, str]) -> bool:
        have = labels.get(self.name, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        found = re.fullmatch(self.value, have) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    expired_at: float | None = None

    def active(self, now: float) -> bool:
        end = self.ends_at if self.expired_at is None else min(self.ends_at, self.expired_at)
        return self.starts_at <= now < end

    def state(self, now: float) -> str:
        if self.active(now):
            return "active"
        return "pending" if now < self.starts_at and self.expired_at is None else "expired"

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_by": self.created_by,
            "comment": self.comment,
            "created_at": self.created_at,
            "expired_at": self.expired_at,
        }
        if now is not None:
            d["state"] = self.state(now)
        return d


class SilenceStore:
    """Silences in the shared SQLite database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(
        self,
        matchers: list[str] | list[Matcher],
        starts_at: float,
        ends_at: float,
        created_by: str,
        comment: str,
        now: float,
    ) -> Silence:
        """Validate and store a silence; author, comment and a future end are required."""
        parsed = tuple(m if isinstance(m, Matcher) else Matcher.parse(m) for m in matchers)
        if not parsed:
            raise SilenceError("a silence needs at least one matcher")
        if not created_by.strip():
            raise SilenceError("a silence needs an author (created_by)")
        if not comment.strip():
            raise SilenceError("a silence needs a comment saying why")
        if ends_at <= starts_at:
            raise SilenceError("a silence must end after it starts")
        if ends_at <= now:
            raise SilenceError("a silence must end in the future")
        s = Silence(uuid.uuid4().hex[:12], parsed, starts_at, ends_at, created_by, comment, now)
        with self._conn:
            self._conn.execute(
                "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    s.id,
                    json.dumps([str(m) for m in parsed]),
                    starts_at,
                    ends_at,
                    created_by,
                    comment,
                    now,
                ),
            )
        return s

    def expire(self, silence_id: str, now: float) -> Silence:
        """End a silence now; raises KeyError if there is no such silence."""
        with self._conn:
            cur = self._conn.execute(
                "UPDATE silences SET expired_at = ? WHERE id = ? AND expired_at IS NULL",
                (now, silence_id),
            )
        s = self.get(silence_id)
        if s is None:
            raise KeyError(silence_id)
        if cur.rowcount == 0 and s.expired_at is None:
            raise KeyError(silence_id)
        return s

    def get(self, silence_id: str) -> Silence | None:
        row = self._conn.execute("SELECT * FROM silences WHERE id = ?", (silence_id,)).fetchone()
        return _row(row) if row else None

    def list(self, now: float, include_expired: bool = False) -> list[Silence]:
        rows = self._conn.execute("SELECT * FROM silences ORDER BY created_at").fetchall()
        out = [_row(r) for r in rows]
        return out if include_expired else [s for s in out if s.state(now) != "expired"]

    def matching(self, labels: dict[str, str], now: float) -> Silence | None:
        """The active silence (longest-lasting) that matches these labels, if any."""
        hits = [s for s in self.list(now) if s.active(now) and s.matches(labels)]
        return max(hits, key=lambda s: s.ends_at) if hits else None


def _row(row: sqlite3.Row) -> Silence:
    return Silence(
        id=row["id"],
        matchers=tuple(Matcher.parse(m) for m in json.loads(row["matchers"])),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        created_by=row["created_by"],
        comment=row["comment"],
        created_at=row["created_at"],
        expired_at=row["expired_at"],
    )
