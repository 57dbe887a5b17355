"""error_burst, server_unhealthy, model_not_ready, gpu_lost, xid_hardware."""

from __future__ import annotations

import pytest

from sentinel.detect.errors import ErrorDetector
from sentinel.detect.settings import ErrorSettings
from sentinel.testing.builders import GPU, T0, canary, gpu, health
from sentinel.vocabulary.findings import Cleared, Finding, Judgement, Severity
from sentinel.vocabulary.samples import GpuEvent, Sample


def _run(d: ErrorDetector, samples: list[Sample]) -> list[Judgement]:
    out: list[Judgement] = []
    for s in samples:
        out += d.observe(s)
    return out


def test_all_canaries_failing_is_a_critical_burst() -> None:
    """Canaries failing make one critical error_burst with the rate and last error."""
    samples: list[Sample] = [canary(T0 + 5 * i) for i in range(20)]
    samples += [
        canary(T0 + 100 + 5 * i, None, outcome="server_error", error="CUDA error 700")
        for i in range(10)
    ]
    samples += [canary(T0 + 150 + 5 * i) for i in range(30)]
    out = _run(ErrorDetector(), samples)
    assert ["Finding", "Cleared"] == [type(j).__name__ for j in out]
    f = out[0]
    assert isinstance(f, Finding)
    assert ("error_burst", Severity.CRITICAL, "CUDA error 700") == (
        f.kind,
        f.severity,
        f.evidence["canary"]["last_error"],
    )
    assert f.evidence["canary"]["error_rate"] >= 0.5


def test_scattered_timeouts_are_quiet() -> None:
    """One timeout in ten canaries is no burst."""
    samples = [
        canary(
            T0 + 5 * i, None if i % 10 == 0 else 0.02, outcome="timeout" if i % 10 == 0 else "ok"
        )
        for i in range(300)
    ]
    assert [] == _run(ErrorDetector(), samples)


def test_triton_failure_counters_make_a_burst() -> None:
    """Triton's failure counter rising to 20 % of requests is an error_burst from counters."""
    samples: list[Sample] = []
    ok = fail = 0.0
    for i in range(60):
        ok += 100
        fail += 25 if i >= 30 else 0
        samples.append(health(T0 + 2 * i, success=ok, failure=fail))
    out = _run(ErrorDetector(), samples)
    f = out[0]
    assert isinstance(f, Finding)
    assert (["triton_counters"], "error_burst") == (f.evidence["sources"], f.kind)
    assert Severity.WARNING == f.severity
    assert f.evidence["triton"]["failure_ratio"] >= 0.05
    assert f.evidence["triton"]["requests"] >= 20


def test_server_not_ready_for_three_checks_is_critical() -> None:
    """Three not-ready health checks make server_unhealthy; three good ones clear it."""
    samples: list[Sample] = [health(T0 + 2 * i, ready=i not in (3, 4, 5)) for i in range(12)]
    out = _run(ErrorDetector(), samples)
    assert [("server_unhealthy", "Finding"), ("server_unhealthy", "Cleared")] == [
        (j.kind, type(j).__name__) for j in out
    ]
    assert Severity.CRITICAL == out[0].severity  # type: ignore[union-attr]


def test_unreachable_server_says_why() -> None:
    """A health probe that cannot connect is unhealthy, with the error in the summary."""
    samples: list[Sample] = [
        health(T0 + 2 * i, live=False, ready=False, error="connection refused") for i in range(3)
    ]
    out = _run(ErrorDetector(), samples)
    assert "connection refused" in out[0].summary  # type: ignore[union-attr]


def test_model_not_ready_from_health_or_canary() -> None:
    """model_not_ready opens from Triton's view or the canary's, one finding per model."""
    samples: list[Sample] = [health(T0 + 2 * i, model_ready=False) for i in range(3)]
    samples += [canary(T0 + 6 + i, None, outcome="model_not_ready") for i in range(3)]
    out = _run(ErrorDetector(), samples)
    assert [("model_not_ready", "m:*")] == [(j.kind, j.subject.key()) for j in out]


def test_gpu_lost_opens_at_once_and_clears_when_samples_return() -> None:
    """A lost GPU is critical immediately, and closes after three readings of it again."""
    d = ErrorDetector()
    out = d.observe(GpuEvent(ts=T0, uuid=GPU, kind="gpu_lost", detail="fell off the bus"))
    assert [("gpu_lost", Severity.CRITICAL, T0)] == [
        (j.kind, j.severity, j.detected_at) for j in out if isinstance(j, Finding)
    ]
    out = _run(d, [gpu(T0 + 1 + i) for i in range(3)])
    assert ["Cleared"] == [type(j).__name__ for j in out]


def test_hardware_xid_is_critical_application_xid_is_not() -> None:
    """Xid 48 (hardware) opens xid_hardware, Xid 31 (application) does not; quiet clears it."""
    d = ErrorDetector()
    app = d.observe(GpuEvent(ts=T0, uuid=GPU, kind="xid", xid=31, cause="application"))
    hw = d.observe(GpuEvent(ts=T0 + 1, uuid=GPU, kind="xid", xid=48, cause="hardware"))
    assert [] == app
    assert [("xid_hardware", 48)] == [(j.kind, j.evidence["xid"]) for j in hw]
    assert [] == d.tick(T0 + 100)
    cleared = d.tick(T0 + 1 + 3600)
    assert [("xid_hardware", GPU)] == [(c.kind, c.subject.gpu_uuid) for c in cleared]
    assert isinstance(cleared[0], Cleared)


def _partial_burst() -> list[Sample]:
    """20 good canaries 5 s apart, then rechecks 1 s apart: fail, fail, ok, fail, fail."""
    samples: list[Sample] = [canary(T0 + 5 * i) for i in range(20)]
    for i, outcome in enumerate(["timeout", "timeout", "ok", "timeout", "timeout"], start=1):
        ok = outcome == "ok"
        samples.append(canary(T0 + 95 + i, 0.02 if ok else None, outcome=outcome))
    return samples


def test_a_partial_burst_is_found_by_its_evidence_before_the_window_rate() -> None:
    """Four failures in five rechecks are a burst on sequential evidence (a million to one
    against the normal 1 %), while the 20 s window, still holding the good canaries from
    before, shows only 44 %."""
    out = _run(ErrorDetector(), _partial_burst())
    f = out[0]
    assert isinstance(f, Finding)
    seq = f.evidence["canary"]["sequential"]
    assert (["sequential"], T0 + 100, 0.4444, 4, 5) == (
        f.evidence["rules"],
        f.detected_at,
        f.evidence["canary"]["error_rate"],
        seq["errors_since"],
        seq["canaries_since"],
    )
    assert seq["log_odds"] >= seq["threshold"]


def test_without_the_sequential_rule_the_partial_burst_waits_for_the_window() -> None:
    """evidence_log_odds: None leaves only the window's rate, still under 50 % here."""
    assert [] == _run(ErrorDetector(ErrorSettings(evidence_log_odds=None)), _partial_burst())


def test_a_steady_low_error_rate_is_no_burst() -> None:
    """One canary in five failing for hours gathers evidence, but its rate (20 %) is under
    max_error_rate: no burst, from either rule."""
    samples = [
        canary(T0 + 5 * i, 0.02 if i % 5 else None, outcome="ok" if i % 5 else "timeout")
        for i in range(3000)
    ]
    assert [] == _run(ErrorDetector(), samples)


def test_normal_rate_must_be_under_the_burst_rate() -> None:
    """A normal error rate at or above max_error_rate is a settings error."""
    with pytest.raises(ValueError, match="normal_error_rate must be < max_error_rate"):
        ErrorSettings(normal_error_rate=0.5, max_error_rate=0.5)
