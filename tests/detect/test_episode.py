"""The life of one condition: sustain, hysteresis, clear."""

from __future__ import annotations

from typing import Any

from sentinel.detect.episode import Episode
from sentinel.vocabulary.findings import Cleared, Finding, Severity, Subject


def _fire(started: float, ts: float) -> tuple[Severity, str, dict[str, Any]]:
    return Severity.WARNING, "bad", {"started": started, "at": ts}


def _episode() -> Episode:
    return Episode(
        kind="k",
        subject=Subject(model="m"),
        detector="d",
        min_duration_s=10.0,
        min_samples=2,
        clear_duration_s=20.0,
        clear_samples=2,
    )


def test_fires_only_after_min_duration_and_samples() -> None:
    """A breach fires once it has lasted min_duration_s, with onset at its first sample."""
    ep = _episode()
    assert ep.update(0.0, True, False, _fire) is None
    assert ep.update(5.0, True, False, _fire) is None
    out = ep.update(10.0, True, False, _fire)
    assert isinstance(out, Finding)
    assert (0.0, 10.0) == (out.started_at, out.detected_at)
    assert ep.update(15.0, True, False, _fire) is None


def test_a_sustained_breach_fires_at_once_with_its_onset() -> None:
    """A breach the caller's sequential test holds as sustained since an earlier onset fires
    on that sample, whatever min_duration_s and min_samples say; a plain one still waits."""
    ep = _episode()
    assert ep.update(0.0, True, False, _fire) is None
    out = ep.update(1.0, True, False, _fire, sustained_since=-0.5)
    assert isinstance(out, Finding)
    assert (-0.5, 1.0) == (out.started_at, out.detected_at)
    fresh = _episode()
    out = fresh.update(3.0, True, False, _fire, sustained_since=2.0)
    assert isinstance(out, Finding)
    assert (2.0, 3.0) == (out.started_at, out.detected_at)
    assert _episode().update(3.0, False, False, _fire, sustained_since=2.0) is None


def test_recovery_while_pending_cancels() -> None:
    """A pending breach that recovers before min_duration never fires."""
    ep = _episode()
    ep.update(0.0, True, False, _fire)
    ep.update(5.0, False, True, _fire)
    assert ep.update(10.0, True, False, _fire) is None
    assert 10.0 == ep.started_at


def test_hysteresis_band_keeps_pending_alive() -> None:
    """Between the breach and clear levels a pending breach neither fires early nor resets."""
    ep = _episode()
    ep.update(0.0, True, False, _fire)
    ep.update(5.0, False, False, _fire)
    out = ep.update(10.0, True, False, _fire)
    assert isinstance(out, Finding)
    assert 0.0 == out.started_at


def test_clears_after_sustained_recovery_only() -> None:
    """An open finding clears after clear_duration_s of recovery; a relapse restarts the count."""
    ep = _episode()
    ep.update(0.0, True, False, _fire)
    ep.update(10.0, True, False, _fire)
    assert ep.update(20.0, False, True, _fire) is None
    assert ep.update(30.0, True, False, _fire) is None
    assert ep.update(35.0, False, True, _fire) is None
    assert ep.update(50.0, False, True, _fire) is None
    out = ep.update(55.0, False, True, _fire)
    assert isinstance(out, Cleared)
    assert 55.0 == out.cleared_at
    assert 0.0 == out.evidence["started_at"]
    assert not ep.is_active


def test_open_now_is_idempotent() -> None:
    """An event-driven finding opens once; a repeat while open says nothing new."""
    ep = _episode()
    first = ep.open_now(1.0, Severity.CRITICAL, "lost", {})
    assert isinstance(first, Finding)
    assert ep.open_now(2.0, Severity.CRITICAL, "lost", {}) is None
