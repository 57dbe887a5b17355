"""error_burst, server_unhealthy, model_not_ready, gpu_lost, xid_hardware."""

from __future__ import annotations

from detect_builders import GPU, T0, canary, gpu, health

from sentinel.detect.errors import ErrorDetector
from sentinel.detect.findings import Cleared, Finding, Judgement, Severity
from sentinel.probes.samples import GpuEvent, Sample


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
