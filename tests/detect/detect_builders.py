"""Sample builders for detector tests (real sample types, explicit fields)."""

from __future__ import annotations

from sentinel.vocabulary.samples import Agreement, CanaryResult, GpuProcess, GpuSample, TritonHealth

T0 = 1_763_000_000.0
GPU = "GPU-test"
TOTAL = 80 * 2**30


def canary(
    ts: float,
    latency: float | None = 0.02,
    *,
    model: str = "m",
    version: str = "1",
    batch: int = 1,
    outcome: str = "ok",
    error: str | None = None,
    top1: float | None = None,
    cosine: float = 0.999,
    recheck: bool = False,
) -> CanaryResult:
    agreement = None if top1 is None else Agreement(max_abs_error=0.0, cosine=cosine, top1=top1)
    return CanaryResult(
        ts=ts,
        model=model,
        version=version,
        batch_size=batch,
        outcome=outcome,  # type: ignore[arg-type]
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
