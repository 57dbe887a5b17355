"""A bare (timestamp, value) series as the samples a detector reads.

`sentinel replay` uses this for CSV files (e.g. exported from Prometheus), and the
trace suite for its single-value traces. Each detector reads one sample field.
"""

from __future__ import annotations

from collections.abc import Callable

from sentinel.vocabulary.samples import Agreement, CanaryResult, GpuSample, Sample, TritonHealth

SERIES_MODEL = "series"
SERIES_GPU = "GPU-series"
SERIES_TOTAL_BYTES = 80 * 2**30
"""Memory size assumed for a used-fraction series (any size gives the same fractions)."""
SERIES_SLOWDOWN_C = 89.0
"""Slowdown threshold assumed for a temperature series when none is configured."""

FIELDS: dict[str, str] = {
    "latency": "canary latency in seconds (CanaryResult.latency_s)",
    "memory": "GPU memory used fraction 0..1 (GpuSample used/total)",
    "thermal": "GPU temperature in °C (GpuSample.temperature_c), judged by its margin to the "
    f"slowdown threshold (--set fallback_slowdown_c=N; {SERIES_SLOWDOWN_C:g} if unset)",
    "accuracy": "canary top-1 agreement with the reference 0..1 (Agreement.top1)",
    "errors": "canary failed: 1 (or any non-zero) = error, 0 = ok (CanaryResult.outcome)",
    "backlog": "Triton pending requests (TritonHealth.pending_requests)",
}
"""What a CSV value means for each detector."""


def _latency(ts: float, v: float) -> Sample:
    return CanaryResult(
        ts=ts, model=SERIES_MODEL, version="", batch_size=1, outcome="ok", latency_s=v
    )


def _memory(ts: float, v: float) -> Sample:
    return GpuSample(
        ts=ts,
        index=0,
        uuid=SERIES_GPU,
        memory_total_bytes=SERIES_TOTAL_BYTES,
        memory_used_bytes=round(v * SERIES_TOTAL_BYTES),
    )


def _thermal(ts: float, v: float) -> Sample:
    return GpuSample(ts=ts, index=0, uuid=SERIES_GPU, temperature_c=v)


def _accuracy(ts: float, v: float) -> Sample:
    # cosine is not in the series: 1.0 keeps it out of the judgement
    return CanaryResult(
        ts=ts,
        model=SERIES_MODEL,
        version="",
        batch_size=1,
        outcome="ok",
        latency_s=None,
        agreement=Agreement(max_abs_error=0.0, cosine=1.0, top1=v),
    )


def _errors(ts: float, v: float) -> Sample:
    failed = v != 0
    return CanaryResult(
        ts=ts,
        model=SERIES_MODEL,
        version="",
        batch_size=1,
        outcome="server_error" if failed else "ok",
        error="error in series" if failed else None,
    )


def _backlog(ts: float, v: float) -> Sample:
    return TritonHealth(ts=ts, live=True, ready=True, model=SERIES_MODEL, pending_requests=v)


SAMPLE_FOR: dict[str, Callable[[float, float], Sample]] = {
    "latency": _latency,
    "memory": _memory,
    "thermal": _thermal,
    "accuracy": _accuracy,
    "errors": _errors,
    "backlog": _backlog,
}
"""detector name -> function building its sample from (ts, value)."""
