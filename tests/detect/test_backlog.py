"""backlog: pending requests and the queue's share of request time."""

from __future__ import annotations

from sentinel.detect.backlog import BacklogDetector
from sentinel.testing.builders import T0, health
from sentinel.vocabulary.findings import Finding, Judgement
from sentinel.vocabulary.samples import Sample


def _run(samples: list[Sample]) -> list[Judgement]:
    d = BacklogDetector()
    out: list[Judgement] = []
    for s in samples:
        out += d.observe(s)
    return out


def test_deep_queue_held_a_minute_is_a_backlog() -> None:
    """30 pending requests for over a minute make one backlog finding, cleared when drained."""
    pend = [2.0] * 30 + [30.0] * 40 + [1.0] * 60
    out = _run([health(T0 + 2 * i, pending=p) for i, p in enumerate(pend)])
    assert ["Finding", "Cleared"] == [type(j).__name__ for j in out]
    f = out[0]
    assert isinstance(f, Finding)
    assert (["pending"], 30.0) == (f.evidence["rules"], f.evidence["pending_median"])
    assert f.detected_at - f.started_at >= 60.0


def test_queue_share_from_counters() -> None:
    """Queue time at 80 % of request time with requests waiting is a backlog by share."""
    samples: list[Sample] = []
    req = queue = 0.0
    for i in range(80):
        req += 1e6
        queue += 0.8e6 if i >= 20 else 0.1e6
        samples.append(health(T0 + 2 * i, pending=4.0, queue_us=queue, request_us=req))
    out = _run(samples)
    f = out[0]
    assert isinstance(f, Finding)
    assert ["queue_share"] == f.evidence["rules"]
    assert 0.8 == round(f.evidence["queue_share"], 2)


def test_short_queue_spike_is_quiet() -> None:
    """A queue that drains within half a minute is no backlog."""
    pend = [2.0] * 30 + [40.0] * 10 + [2.0] * 30
    assert [] == _run([health(T0 + 2 * i, pending=p) for i, p in enumerate(pend)])
