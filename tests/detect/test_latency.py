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
    """A x5 step (80 ms over the baseline, over sequential_min_increase_s) fires on its
    third slow canary (the sequential rule) with the numbers behind it, onset at the
    first, and clears after it ends."""
    d = LatencyDetector()
    lat = _noise(200) + [5 * v for v in _noise(60, 2)] + _noise(60, 3)
    out = _feed(d, lat)
    findings = [j for j in out if isinstance(j, Finding)]
    clears = [j for j in out if isinstance(j, Cleared)]
    assert 1 == len(findings)
    f = findings[0]
    assert ("latency_spike", Severity.WARNING, "sequential") == (
        f.kind,
        f.severity,
        f.evidence["rule"],
    )
    assert f.evidence["latest_s"] > f.evidence["threshold_s"] >= 2 * f.evidence["baseline_median_s"]
    assert f.evidence["log_odds"] >= f.evidence["log_odds_threshold"]
    assert (T0 + 5 * 200, T0 + 5 * 202) == (f.started_at, f.detected_at)
    assert 1 == len(clears)
    assert clears[0].cleared_at > T0 + 5 * 260


def test_window_rule_still_needs_its_sustain() -> None:
    """With the sequential rule off, a x3 step fires from the window's quantile only after
    min_duration_s."""
    d = LatencyDetector(LatencySettings(evidence_log_odds=None))
    out = _feed(d, _noise(200) + [3 * v for v in _noise(60, 2)])
    f = next(j for j in out if isinstance(j, Finding))
    assert "baseline" == f.evidence["rule"]
    assert f.detected_at - f.started_at >= LatencySettings().min_duration_s > 0


def test_a_small_step_waits_for_the_window_rule() -> None:
    """A x2.5 step (30 ms over a 20 ms baseline, under sequential_min_increase_s) is left
    to the window's quantile and its sustain: a reload's brief slowdown acts nothing."""
    d = LatencyDetector()
    out = _feed(d, _noise(200) + [2.5 * v for v in _noise(60, 2)])
    f = next(j for j in out if isinstance(j, Finding))
    assert "baseline" == f.evidence["rule"]
    assert f.detected_at - f.started_at >= LatencySettings().min_duration_s


def test_two_slow_canaries_in_a_row_do_not_fire() -> None:
    """Two slow canaries (a pair of GC pauses) and then normal ones are no spike; three in
    a row are."""
    d = LatencyDetector()
    lat = _noise(200)
    for i in (100, 101, 150, 151):
        lat[i] *= 10
    assert [] == _feed(d, lat)
    out = _feed(d, [0.2] * 3, start=T0 + 5 * 200)
    assert ["latency_spike"] == [j.kind for j in out if isinstance(j, Finding)]


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
    # the sequential rule finds it first (the SLO is the only bar without a baseline)
    assert (Severity.CRITICAL, "sequential", 0.1) == (
        f.severity,
        f.evidence["rule"],
        f.evidence["threshold_s"],
    )
    window = LatencyDetector(LatencySettings(slo_s=0.1, evidence_log_odds=None))
    f = _feed(window, [0.5] * 20)[0]
    assert isinstance(f, Finding)
    assert (Severity.CRITICAL, "slo") == (f.severity, f.evidence["rule"])


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
