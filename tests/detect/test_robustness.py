"""Garbage in never crashes the suite, and evidence is always strict JSON."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.detect.suite import DetectorSuite
from sentinel.vocabulary.findings import Cleared, Finding
from sentinel.vocabulary.samples import (
    Agreement,
    CanaryResult,
    GpuEvent,
    GpuProcess,
    GpuSample,
    Sample,
    TritonHealth,
)

num = st.floats(allow_nan=True, allow_infinity=True) | st.none()
small = st.integers(min_value=-(2**40), max_value=2**40) | st.none()
ts = st.floats(min_value=1.7e9, max_value=1.7e9 + 1e5)

canaries = st.builds(
    CanaryResult,
    ts=ts,
    model=st.sampled_from(["a", "b"]),
    version=st.sampled_from(["", "1", "2"]),
    batch_size=st.integers(min_value=1, max_value=8),
    outcome=st.sampled_from(["ok", "timeout", "unreachable", "model_not_ready", "server_error"]),
    latency_s=num,
    error=st.none() | st.text(max_size=40) | st.just("CUDA out of memory"),
    agreement=st.none()
    | st.builds(Agreement, max_abs_error=st.floats(), cosine=st.floats(), top1=st.floats()),
)
gpus = st.builds(
    GpuSample,
    ts=ts,
    index=st.just(0),
    uuid=st.sampled_from(["GPU-a", "GPU-b"]),
    memory_total_bytes=small,
    memory_used_bytes=small,
    temperature_c=num,
    temperature_slowdown_c=num,
    sm_clock_mhz=num,
    sm_clock_max_mhz=num,
    clock_event_reasons=small,
    clock_event_names=st.lists(
        st.sampled_from(["HwSlowdown", "SwPowerCap", "Bogus"]), max_size=3
    ).map(tuple),
    processes=st.lists(
        st.builds(
            GpuProcess,
            pid=st.integers(0, 9),
            used_bytes=small,
            name=st.none() | st.text(max_size=12),
        ),
        max_size=3,
    ).map(tuple),
)
events = st.builds(
    GpuEvent,
    ts=ts,
    uuid=st.sampled_from(["GPU-a", "GPU-b"]),
    kind=st.sampled_from(["xid", "gpu_lost", "nvml_unavailable"]),
    xid=small,
    cause=st.sampled_from(["application", "hardware", "unknown"]),
)
healths = st.builds(
    TritonHealth,
    ts=ts,
    live=st.booleans(),
    ready=st.booleans(),
    model=st.none() | st.sampled_from(["a", "b"]),
    model_ready=st.none() | st.booleans(),
    error=st.none() | st.text(max_size=20),
    success_total=num,
    failure_total=num,
    pending_requests=num,
    request_duration_us_total=num,
    queue_duration_us_total=num,
)
streams = st.lists(st.one_of(canaries, gpus, events, healths), max_size=120)


@given(streams)
@settings(max_examples=300, deadline=None)
def test_any_sample_stream_is_survived(samples: list[Sample]) -> None:
    """Random, even nonsensical samples in any order never raise, and every judgement's
    evidence serialises as strict JSON (no NaN or infinity)."""
    suite = DetectorSuite()
    for s in sorted(samples, key=lambda x: x.ts):
        for j in [*suite.observe(s), *suite.tick(s.ts)]:
            assert isinstance(j, Finding | Cleared)
            json.dumps(j.evidence, allow_nan=False)
