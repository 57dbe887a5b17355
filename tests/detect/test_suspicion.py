"""Detectors' suspicion: which models' canaries deserve a recheck before the next interval."""

from __future__ import annotations

from sentinel.detect.accuracy import AccuracyDetector
from sentinel.detect.errors import ErrorDetector
from sentinel.detect.latency import LatencyDetector
from sentinel.detect.settings import AccuracySettings, DetectorSettings, LatencySettings
from sentinel.detect.suite import DetectorSuite
from sentinel.testing.builders import T0, canary, gpu


def test_a_failed_canary_is_suspect_until_the_burst_is_found() -> None:
    """One failed canary makes its model suspect, and it stays so while the evidence of a
    burst has not faded; once error_burst is open, rechecks stop."""
    det = ErrorDetector()
    seen = []
    for i, outcome in enumerate(["ok", "ok", "ok", "server_error", "ok", "server_error"]):
        det.observe(canary(T0 + 5 * i, outcome=outcome))
        seen.append(det.suspects("m"))
    for i in range(6, 12):  # a sustained burst opens the finding
        det.observe(canary(T0 + 5 * i, outcome="timeout"))
    expected = [False, False, False, True, True, True]
    assert (expected, False, False) == (seen, det.suspects("m"), det.suspects("other"))


def test_good_rechecks_dispel_a_lone_error() -> None:
    """After one failed canary, a few good ones wear its evidence away: no longer suspect."""
    det = ErrorDetector()
    det.observe(canary(T0, outcome="timeout", latency=None))
    seen = []
    for i in range(1, 8):
        det.observe(canary(T0 + i))
        seen.append(det.suspects("m"))
    # each good canary takes ln(0.99/0.5) = 0.68 off the 3.9 of the error; under
    # two to one (0.69) after 5 of them
    assert [True] * 4 + [False] * 3 == seen


def test_one_slow_canary_is_suspect_but_not_yet_a_spike() -> None:
    """A single latency over the bar at one batch size makes the model suspect; a fast one
    clears the suspicion."""
    det = LatencyDetector(LatencySettings(baseline_min_samples=5, min_samples=3))
    for i in range(20):
        det.observe(canary(T0 + 5 * i, 0.020))
        det.observe(canary(T0 + 5 * i, 0.030, batch=8))
    before = det.suspects("m")
    findings = det.observe(canary(T0 + 100, 0.500, batch=8))
    slow = det.suspects("m")
    det.observe(canary(T0 + 101, 0.020, batch=8))
    assert (False, [], True, False) == (before, findings, slow, det.suspects("m"))


def test_a_pending_latency_breach_stays_suspect_until_it_fires() -> None:
    """While a breach waits out min_duration_s the model stays suspect; open, it is not."""
    det = LatencyDetector(LatencySettings(baseline_min_samples=5, min_duration_s=10))
    for i in range(20):
        det.observe(canary(T0 + 5 * i, 0.020))
    states, fired = [], []
    for i in range(12):
        if det.observe(canary(T0 + 100 + 2 * i, 0.300)):
            fired.append(i)
        states.append(det.suspects("m"))
    assert 1 == len(fired)
    assert [True] * fired[0] + [False] * (12 - fired[0]) == states


def test_a_canary_under_the_agreement_bar_is_suspect() -> None:
    """One canary whose top-1 agreement is under the drift bar makes its model suspect."""
    det = AccuracyDetector(AccuracySettings(min_samples=2))
    for i in range(10):
        det.observe(canary(T0 + 5 * i, top1=0.99))
    calm = det.suspects("m")
    det.observe(canary(T0 + 50, top1=0.70))
    assert (False, True) == (calm, det.suspects("m"))


def test_the_suite_suspects_a_model_any_canary_detector_suspects() -> None:
    """The suite's answer is any detector's; GPU samples never make a model suspect."""
    suite = DetectorSuite(DetectorSettings())
    suite.observe(gpu(T0, used_fraction=0.99))
    calm = suite.suspects("m")
    suite.observe(canary(T0 + 1, outcome="unreachable", latency=None))
    assert (False, True) == (calm, suite.suspects("m"))


def test_agreement_evidence_gathering_keeps_the_model_suspect() -> None:
    """Canaries each above the bar but below the model's normal agreement gather evidence
    of a drop, and the model stays suspect while they do."""
    det = AccuracyDetector(AccuracySettings(min_samples=2, baseline_min_samples=5))
    for i in range(10):
        det.observe(canary(T0 + 5 * i, top1=62 / 64, batch=64))
    calm = det.suspects("m")
    det.observe(canary(T0 + 50, top1=59 / 64, batch=64))  # above the bar (0.919), below normal
    assert (False, True) == (calm, det.suspects("m"))
