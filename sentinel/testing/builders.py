"""Builders for the samples and findings sentinel passes between its stages.

Real sample types with explicit, plausible fields, so a test says only what
matters to it::

    samples = [canary(T0 + i, latency=0.4) for i in range(60)]
    hot = gpu(T0, temp=91.0, reasons=0x40)
    down = health(T0, live=False, ready=False, error="connection refused")

Timestamps are epoch seconds; start from :data:`T0` and a
:class:`~sentinel.base.clock.FakeClock` created with ``FakeClock(T0)``.
"""

from __future__ import annotations

from sentinel.vocabulary.findings import Cleared, Finding, Severity, Subject
from sentinel.vocabulary.samples import (
    Agreement,
    CanaryOutcome,
    CanaryResult,
    GpuProcess,
    GpuSample,
    TritonHealth,
)

T0 = 1_763_000_000.0
"""A fixed epoch start for timelines (any value works; a fixed one keeps runs alike)."""
GPU = "GPU-test"
"""The UUID the GPU builders use unless told otherwise."""
TOTAL = 80 * 2**30
"""GPU memory of a built sample, in bytes (an 80 GiB card)."""


def canary(
    ts: float,
    latency: float | None = 0.02,
    *,
    model: str = "m",
    version: str = "1",
    batch: int = 1,
    outcome: CanaryOutcome = "ok",
    error: str | None = None,
    top1: float | None = None,
    cosine: float = 0.999,
    recheck: bool = False,
) -> CanaryResult:
    """One canary result; ``top1`` given means an agreement check was made."""
    agreement = None if top1 is None else Agreement(max_abs_error=0.0, cosine=cosine, top1=top1)
    return CanaryResult(
        ts=ts,
        model=model,
        version=version,
        batch_size=batch,
        outcome=outcome,
        latency_s=latency,
        error=error,
        agreement=agreement,
        recheck=recheck,
    )


def gpu(
    ts: float,
    used_fraction: float = 0.4,
    *,
    reasons: int = 0,
    temp: float = 60.0,
    slowdown: float | None = 89.0,
    processes: tuple[GpuProcess, ...] = (),
    uuid: str = GPU,
) -> GpuSample:
    """One NVML sample of GPU 0, memory given as the used fraction of :data:`TOTAL`."""
    return GpuSample(
        ts=ts,
        index=0,
        uuid=uuid,
        memory_total_bytes=TOTAL,
        memory_used_bytes=round(used_fraction * TOTAL),
        temperature_c=temp,
        temperature_slowdown_c=slowdown,
        sm_clock_mhz=1000.0,
        sm_clock_max_mhz=2000.0,
        clock_event_reasons=reasons,
        processes=processes,
    )


def health(
    ts: float,
    *,
    live: bool = True,
    ready: bool = True,
    model: str | None = "m",
    model_ready: bool | None = True,
    pending: float | None = None,
    success: float | None = None,
    failure: float | None = None,
    queue_us: float | None = None,
    request_us: float | None = None,
    error: str | None = None,
) -> TritonHealth:
    """One Triton health probe; counters left ``None`` were not scraped."""
    return TritonHealth(
        ts=ts,
        live=live,
        ready=ready,
        model=model,
        model_ready=model_ready,
        pending_requests=pending,
        success_total=success,
        failure_total=failure,
        queue_duration_us_total=queue_us,
        request_duration_us_total=request_us,
        error=error,
    )


def finding(
    model: str,
    at: float,
    kind: str = "latency_spike",
    severity: Severity = Severity.CRITICAL,
    gpu: str | None = None,
) -> Finding:
    """A latency finding on ``model`` detected at ``at`` (kind and severity adjustable)."""
    return Finding(
        kind=kind,
        severity=severity,
        subject=Subject(model=model, version="1", gpu_uuid=gpu),
        started_at=at - 30,
        detected_at=at,
        summary=f"p99 latency of {model} 412 ms > SLO 250 ms for 30 s",
        evidence={"p99_ms": 412.0, "slo_ms": 250.0, "samples": 30},
        detector="latency",
    )


def cleared(model: str, at: float, kind: str = "latency_spike") -> Cleared:
    """The finding of this kind on ``model`` cleared at ``at``."""
    return Cleared(kind=kind, subject=Subject(model=model, version="1"), cleared_at=at)
