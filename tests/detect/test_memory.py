"""gpu_oom and gpu_oom_predicted: memory high, growing, or failing; who holds it."""

from __future__ import annotations

from sentinel.detect.memory import MemoryDetector
from sentinel.detect.settings import MemorySettings
from sentinel.testing.builders import GPU, T0, canary, gpu
from sentinel.vocabulary.findings import Cleared, Finding, Judgement, Severity
from sentinel.vocabulary.samples import GpuProcess


def _run(
    d: MemoryDetector, fractions: list[float], step: float = 5.0, **kw: object
) -> list[Judgement]:
    out: list[Judgement] = []
    for i, f in enumerate(fractions):
        out += d.observe(gpu(T0 + step * i, f, **kw))  # type: ignore[arg-type]
    return out


def test_high_memory_sustained_is_critical_gpu_oom() -> None:
    """97 % used for over a minute is a critical gpu_oom on that GPU, cleared below 90 %."""
    d = MemoryDetector()
    out = _run(d, [0.4] * 10 + [0.97] * 20 + [0.5] * 40)
    kinds = [(type(j).__name__, j.kind) for j in out]
    assert [("Finding", "gpu_oom"), ("Cleared", "gpu_oom")] == kinds
    f = out[0]
    assert isinstance(f, Finding)
    assert (Severity.CRITICAL, GPU, "high_memory") == (
        f.severity,
        f.subject.gpu_uuid,
        f.evidence["trigger"],
    )
    assert f.evidence["sustained_s"] >= 60.0


def test_full_memory_fires_within_seconds() -> None:
    """At 99.5 % the finding comes after the short full-memory hold, not the minute."""
    d = MemoryDetector()
    out = _run(d, [0.3] * 4 + [0.995] * 4, step=2.0)
    assert 1 == len(out)
    f = out[0]
    assert isinstance(f, Finding)
    assert ("full_memory", 6.0) == (f.evidence["trigger"], f.detected_at - f.started_at)


def test_leak_is_predicted_before_memory_runs_out() -> None:
    """Steady growth of 30 %/h from 50 % warns (gpu_oom_predicted) with the slope and ETA."""
    d = MemoryDetector()
    per_sample = 0.30 / 3600 * 5
    out = _run(d, [0.5 + per_sample * i for i in range(600)])
    assert ["gpu_oom_predicted"] == [j.kind for j in out]
    f = out[0]
    assert isinstance(f, Finding)
    assert Severity.WARNING == f.severity
    assert 0.30 == round(f.evidence["slope_per_h"], 2)
    assert f.evidence["eta_s"] < MemorySettings().horizon_s
    assert f.evidence["r2"] >= 0.9


def test_one_step_up_is_not_a_leak() -> None:
    """A model load (one 20 s ramp of +30 %) is not extrapolated into an OOM."""
    d = MemoryDetector()
    fractions = [0.4] * 200 + [0.4 + 0.3 * min(1.0, i / 4) for i in range(1, 500)]
    assert [] == _run(d, fractions)


def test_other_process_is_named_as_the_cause() -> None:
    """With the server's pid known, memory held by another process is the attributed cause."""
    procs = (
        GpuProcess(pid=10, used_bytes=10 * 2**30, name="tritonserver"),
        GpuProcess(pid=77, used_bytes=68 * 2**30, name="python3"),
    )
    d = MemoryDetector(server_pids={10})
    out = _run(d, [0.98] * 20, processes=procs)
    f = out[0]
    assert isinstance(f, Finding)
    assert "other_process" == f.evidence["cause"]
    assert [77] == [p["pid"] for p in f.evidence["other_processes"]]
    assert "pid 77" in f.summary


def test_server_name_counts_as_server_and_unknown_without_it() -> None:
    """The server found by name is no culprit; with no server known nobody is blamed."""
    mine = (GpuProcess(pid=5, used_bytes=70 * 2**30, name="/opt/tritonserver/bin/tritonserver"),)
    assert "server" == MemoryDetector().attribute(gpu(T0, 0.9, processes=mine))["cause"]
    stranger = (GpuProcess(pid=5, used_bytes=70 * 2**30, name=None),)
    assert "unknown" == MemoryDetector().attribute(gpu(T0, 0.9, processes=stranger))["cause"]


def test_oom_error_text_opens_once_and_clears_after_quiet() -> None:
    """CUDA OOM text in canary errors is a critical gpu_oom per model, closed by clean canaries."""
    d = MemoryDetector()
    err = "CUDA out of memory. Tried to allocate 1024.00 MiB"
    out: list[Judgement] = []
    for i in range(3):
        out += d.observe(canary(T0 + i, None, outcome="server_error", error=err))
    for i in range(3, 200):
        out += d.observe(canary(T0 + 5 * i, 0.02))
    assert ["Finding", "Cleared"] == [type(j).__name__ for j in out]
    f = out[0]
    assert isinstance(f, Finding)
    assert ("oom_error", "out of memory", "m:*") == (
        f.evidence["trigger"],
        f.evidence["pattern"],
        f.subject.key(),
    )
    assert isinstance(out[1], Cleared)


def _noisy_leak(settings: MemorySettings) -> Finding:
    """A 10 %/h leak from 40 % with 0.05 % noise: the first gpu_oom_predicted."""
    import numpy as np

    noise = np.random.default_rng(3).normal(0, 5e-4, 5000)
    fractions = [0.40 + 0.10 / 3600 * 5 * i + float(noise[i]) for i in range(5000)]
    out = _run(MemoryDetector(settings), fractions)
    f = out[0]
    assert isinstance(f, Finding)
    return f


def test_a_noisy_fit_warns_from_its_upper_band() -> None:
    """The time to 100 % is read from the fit's upper confidence band: the warning comes
    sooner than from the line itself, and its evidence gives both readings."""
    banded = _noisy_leak(MemorySettings())
    line = _noisy_leak(MemorySettings(eta_confidence_z=0))
    fit = next(x for x in banded.evidence["fits"] if x["qualifies"])
    assert banded.detected_at < line.detected_at
    assert fit["eta_s"] < fit["line_eta_s"]
    assert 2.0 == banded.evidence["eta_confidence_z"]
