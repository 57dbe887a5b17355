"""latency_spike: short-window quantile against the robust baseline and the SLO."""

from __future__ import annotations

import numpy as np

from sentinel.detect.latency import LatencyDetector
from sentinel.detect.settings import LatencySettings
from sentinel.testing.builders import T0, canary
from sentinel.vocabulary.findings import Cleared, Finding, Judgement, Severity


def _feed(d: LatencyDetector, lat: list[float], start: float = T0, **kw: object) -> list[Judgement]:
    out: list[Judgement] = []
    for i, v in enumerate(lat):
        out += d.observe(canary(start + 5.0 * i, v, **kw))  # type: ignore[arg-type]
    return out


def _noise(n: int, seed: int = 1) -> list[float]:
    return (0.02 * np.random.default_rng(seed).lognormal(0, 0.1, n)).tolist()


def test_step_fires_with_baseline_evidence_and_clears() -> None:
    """A x3 step fires after the sustain with the numbers behind it, and clears after it ends."""
    d = LatencyDetector()
    lat = _noise(200) + [3 * v for v in _noise(60, 2)] + _noise(60, 3)
    out = _feed(d, lat)
    findings = [j for j in out if isinstance(j, Finding)]
    clears = [j for j in out if isinstance(j, Cleared)]
    assert 1 == len(findings)
    f = findings[0]
    assert ("latency_spike", Severity.WARNING, "baseline") == (
        f.kind,
        f.severity,
        f.evidence["rule"],
    )
    assert f.evidence["value_s"] > f.evidence["threshold_s"] >= 2 * f.evidence["baseline_median_s"]
    assert f.evidence["samples"] >= 5
    assert f.detected_at - f.started_at >= 30.0
    assert T0 + 5 * 200 <= f.started_at
    assert 1 == len(clears)
    assert clears[0].cleared_at > T0 + 5 * 260


def test_lone_gc_pauses_do_not_fire() -> None:
    """Isolated x10 outliers (GC pauses) are despiked and never make a finding."""
    d = LatencyDetector()
    lat = _noise(600)
    for i in range(50, 600, 40):
        lat[i] *= 10
    assert [] == _feed(d, lat)


def test_slo_breach_is_critical_even_without_baseline() -> None:
    """Above an absolute SLO the finding is critical, and needs no learned baseline."""
    d = LatencyDetector(LatencySettings(slo_s=0.1))
    out = _feed(d, [0.5] * 20)
    assert 1 == len(out)
    f = out[0]
    assert isinstance(f, Finding)
    assert (Severity.CRITICAL, "slo", 0.1) == (
        f.severity,
        f.evidence["rule"],
        f.evidence["threshold_s"],
    )


def test_series_are_per_model_and_batch_size() -> None:
    """A spike on batch size 8 opens a finding for bs8 only, naming model and version."""
    d = LatencyDetector()
    _feed(d, _noise(100), batch=1)
    _feed(d, _noise(100), batch=8)
    start = T0 + 500
    out = _feed(d, [0.2] * 30, start=start, batch=8) + _feed(d, _noise(30), start=start, batch=1)
    assert ["m:1/bs8"] == [j.subject.key() for j in out if isinstance(j, Finding)]


def test_failed_canaries_carry_no_latency() -> None:
    """Canaries that got no answer are the error detector's business, not latency's."""
    d = LatencyDetector()
    out = [d.observe(canary(T0 + i, None, outcome="timeout")) for i in range(50)]
    assert [[]] * 50 == out
