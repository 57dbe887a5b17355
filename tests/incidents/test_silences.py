"""Silences: matchers, validation, activity windows and expiry."""

from __future__ import annotations

import sqlite3

import pytest

from sentinel.incidents.silences import Matcher, SilenceError, SilenceStore

T0 = 1_700_000_000.0


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("model=resnet", {"model": "resnet"}, True),
        ("model=resnet", {"model": "bert"}, False),
        ("model!=resnet", {"model": "bert"}, True),
        ("kind=~latency.*", {"kind": "latency_spike"}, True),
        ("kind=~latency", {"kind": "latency_spike"}, False),
        ("kind!~thermal.*", {"kind": "latency_spike"}, True),
        ("gpu_uuid=GPU-1", {}, False),
    ],
)
def test_matchers(text: str, labels: dict[str, str], expected: bool) -> None:
    """Each operator matches like Alertmanager's (regexes anchored)."""
    assert expected == Matcher.parse(text).matches(labels)


@pytest.mark.parametrize("bad", ["model", "=x", "1abc=x", "kind=~(", ""])
def test_bad_matchers_are_refused(bad: str) -> None:
    """Malformed matchers raise SilenceError naming the matcher."""
    with pytest.raises(SilenceError):
        Matcher.parse(bad)


def test_silence_needs_author_comment_and_future_end(conn: sqlite3.Connection) -> None:
    """Author, comment and an end in the future are required."""
    store = SilenceStore(conn)
    with pytest.raises(SilenceError, match="author"):
        store.add(["model=a"], T0, T0 + 60, " ", "why", T0)
    with pytest.raises(SilenceError, match="comment"):
        store.add(["model=a"], T0, T0 + 60, "bob", "", T0)
    with pytest.raises(SilenceError, match="future"):
        store.add(["model=a"], T0 - 100, T0 - 50, "bob", "why", T0)


def test_maintenance_window_and_expiry(conn: sqlite3.Connection) -> None:
    """A future silence is pending, then active, and expire() ends it early."""
    store = SilenceStore(conn)
    s = store.add(["model=resnet"], T0 + 100, T0 + 200, "bob", "node drain", T0)
    labels = {"model": "resnet"}
    assert (store.matching(labels, T0), s.state(T0)) == (None, "pending")
    active = store.matching(labels, T0 + 150)
    assert (active.id if active else None) == s.id
    store.expire(s.id, T0 + 160)
    assert store.matching(labels, T0 + 170) is None
    assert [] == store.list(T0 + 170)
    assert [s.id] == [x.id for x in store.list(T0 + 170, include_expired=True)]
    with pytest.raises(KeyError):
        store.expire("nope", T0)
