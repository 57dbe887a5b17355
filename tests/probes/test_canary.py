"""The canary and health probes against a real tritonserver, with the model's fault knobs."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from triton_fixtures import GOLDEN_DIGITS, ModelHandle, make_adapter

from sentinel.base.clock import SystemClock
from sentinel.detect.settings import DetectorSettings
from sentinel.detect.suite import DetectorSuite
from sentinel.probes.canary import CanaryGroup, CanaryProbe, GoldenSetError
from sentinel.probes.metrics import ProbeMetrics
from sentinel.probes.settings import CanarySettings
from sentinel.probes.triton import TritonAdapter
from sentinel.probes.triton_health import TritonHealthProbe
from sentinel.testing.triton_local import LocalTriton
from sentinel.vocabulary.samples import CanaryResult, Sample, TritonHealth

pytestmark = pytest.mark.triton


@pytest.fixture
async def adapter(digits: ModelHandle) -> AsyncIterator[TritonAdapter]:
    """The session server over gRPC, digits in its default config (both protocols are
    covered in test_triton_adapter)."""
    grpc = make_adapter(digits.server, "grpc")
    try:
        yield grpc
    finally:
        await grpc.close()


def _canary(
    adapter: TritonAdapter,
    batch_sizes: list[int] | None = None,
    timeout_s: float = 5.0,
    golden: Path = GOLDEN_DIGITS,
) -> CanaryProbe:
    settings = CanarySettings.model_validate(
        {
            "model": "digits",
            "golden_set": str(golden),
            "batch_sizes": batch_sizes or [1, 8, 32],
            "timeout_s": timeout_s,
        }
    )
    return CanaryProbe(adapter, settings, clock=SystemClock())


def _top1(results: list[CanaryResult]) -> float:
    """Top-1 agreement over all rows of a round (weighted by batch size)."""
    rows = sum(r.batch_size for r in results)
    return sum(r.agreement.top1 * r.batch_size for r in results if r.agreement) / rows


async def test_fp32_agrees_exactly(triton_adapter: TritonAdapter) -> None:
    """FP32 canaries at every batch size are ok with top-1 agreement 1.0 and no real error."""
    results = await _canary(triton_adapter).check()
    figures = [
        (r.batch_size, r.outcome, r.version, r.agreement.top1, r.agreement.cosine)
        for r in results
        if r.agreement
    ]
    print("fp32 (batch, outcome, version, top1, cosine):", figures)
    assert [(b, "ok", "1", 1.0, pytest.approx(1.0)) for b in (1, 8, 32)] == figures
    # batch 1 takes another BLAS path than the 48-row reference run: rounding only
    assert max(r.agreement.max_abs_error for r in results if r.agreement) < 1e-5
    assert all(r.latency_s is not None and r.latency_s > 0 for r in results)


async def test_badly_calibrated_int8_loses_agreement(
    adapter: TritonAdapter, digits: ModelHandle
) -> None:
    """FP16 and well-calibrated INT8 agree on top-1; badly calibrated INT8 measurably not.

    Figures seen: fp32/fp16/int8-good top-1 1.000; int8-bad top-1 0.633, cosine 0.55.
    """
    canary = _canary(adapter, batch_sizes=[1, 16, 32])
    figures: dict[str, tuple[float, float, float]] = {}
    for name, knobs in {
        "fp32": {"precision": "fp32"},
        "fp16": {"precision": "fp16"},
        "int8-good": {"precision": "int8", "int8_calibration": "good"},
        "int8-bad": {"precision": "int8", "int8_calibration": "bad"},
    }.items():
        digits.reconfigure(**knobs)
        results = await canary.check()
        assert [r.outcome for r in results] == ["ok"] * 3
        worst = max(r.agreement.max_abs_error for r in results if r.agreement)
        cosine = min(r.agreement.cosine for r in results if r.agreement)
        figures[name] = (_top1(results), cosine, worst)
        print(f"{name}: top1 {figures[name][0]:.3f} cosine {cosine:.4f} max_abs {worst:.4f}")
    assert figures["fp32"][0] == 1.0
    assert figures["fp16"][0] == 1.0
    assert figures["int8-good"][0] >= 0.95
    # each precision really computes differently: error grows fp32 < fp16 < int8
    assert figures["fp32"][2] < figures["fp16"][2] < figures["int8-good"][2]
    assert figures["int8-bad"][0] <= figures["fp32"][0] - 0.2


async def test_added_latency_shows_in_the_histogram(
    adapter: TritonAdapter, digits: ModelHandle
) -> None:
    """delay_ms=120 puts every canary above the 0.1 s bucket; undelayed ones reach <= 0.05 s."""
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry)
    canary = _canary(adapter, batch_sizes=[1, 8])

    def value(suffix: str, batch: str, le: str | None = None) -> float:
        labels = {"model": "digits", "version": "1", "batch_size": batch}
        if le is not None:
            labels["le"] = le
        found = registry.get_sample_value(f"sentinel_canary_latency_seconds{suffix}", labels)
        return 0.0 if found is None else found

    async def rounds(n: int) -> None:
        for _ in range(n):
            for result in await canary.check():
                metrics.observe(result)

    await rounds(3)
    fast_le_005 = [value("_bucket", b, "0.05") for b in ("1", "8")]
    before = [(value("_bucket", b, "0.1"), value("_count", b), value("_sum", b)) for b in "18"]
    digits.reconfigure(delay_ms=120)
    await rounds(3)
    after = [(value("_bucket", b, "0.1"), value("_count", b), value("_sum", b)) for b in "18"]
    print("undelayed canaries <= 0.05 s per batch size:", fast_le_005)
    print("(le=0.1, count, sum) before delay:", before, "after:", after)
    assert all(n >= 1 for n in fast_le_005)
    for (le_before, count_before, sum_before), (le_after, count_after, sum_after) in zip(
        before, after, strict=True
    ):
        assert le_after == le_before
        assert count_after == count_before + 3
        assert sum_after - sum_before >= 3 * 0.12


async def test_error_rate_gives_server_error_with_message(
    triton_adapter: TritonAdapter, digits: ModelHandle
) -> None:
    """error_rate=1 makes every canary a server_error carrying the model's message."""
    message = "CUDA out of memory. Tried to allocate 3.00 GiB"
    digits.reconfigure(error_rate=1, error_message=message)
    results = await _canary(triton_adapter, batch_sizes=[1, 4]).check()
    assert [("server_error", message)] * 2 == [(r.outcome, r.error) for r in results]
    assert all(r.latency_s is not None for r in results)


async def test_oom_above_batch_is_fixed_by_a_smaller_batch(
    adapter: TritonAdapter, digits: ModelHandle
) -> None:
    """oom_above_batch fails while max_batch_size is large; at 8 the capped canary is ok."""
    canary = _canary(adapter, batch_sizes=[1, 32])
    digits.reconfigure(oom_above_batch=8)
    failing = await canary.check()
    digits.reconfigure(max_batch_size=8, oom_above_batch=8)
    fixed = await canary.check()
    assert [r.outcome for r in failing] == ["server_error", "server_error"]
    assert all("out of memory" in (r.error or "") for r in failing)
    assert [(r.batch_size, r.outcome) for r in fixed] == [(1, "ok"), (8, "ok")]


async def test_slow_above_batch_is_fixed_by_a_smaller_batch(
    adapter: TritonAdapter, digits: ModelHandle
) -> None:
    """slow_above_batch adds latency only while max_batch_size exceeds the threshold."""
    canary = _canary(adapter, batch_sizes=[4])

    async def best_latency() -> float:
        # the least of three rounds, so a busy CI core does not fake a slowdown
        rounds = [(await canary.check())[0].latency_s for _ in range(3)]
        return min(r for r in rounds if r is not None)

    digits.reconfigure(delay_ms=150, slow_above_batch=8)
    slow = await best_latency()
    digits.reconfigure(max_batch_size=8, delay_ms=150, slow_above_batch=8)
    fast = await best_latency()
    print(f"slow_above_batch: latency {slow:.3f} s at max batch 32, {fast:.3f} s at 8")
    assert slow >= 0.15
    assert fast < 0.1


async def test_hang_gives_timeout(adapter: TritonAdapter, digits: ModelHandle) -> None:
    """A hung model makes the canary a timeout with no latency."""
    digits.reconfigure(hang_s=1.0)
    results = await _canary(adapter, batch_sizes=[1], timeout_s=0.3).check()
    assert [(r.outcome, r.latency_s) for r in results] == [("timeout", None)]


async def test_unloaded_model_gives_model_not_ready(
    triton_adapter: TritonAdapter, digits: ModelHandle
) -> None:
    """An unloaded model is model_not_ready at every configured batch size."""
    digits.unload()
    results = await _canary(triton_adapter, batch_sizes=[1, 8]).check()
    assert [(r.batch_size, r.outcome) for r in results] == [
        (1, "model_not_ready"),
        (8, "model_not_ready"),
    ]
    assert all("digits" in (r.error or "") for r in results)


async def test_golden_set_that_does_not_fit_is_a_clear_error(
    adapter: TritonAdapter, tmp_path: Path
) -> None:
    """A golden set with the wrong shape: check() raises naming it; once() is bad_response."""
    golden = np.load(GOLDEN_DIGITS)
    path = tmp_path / "short.npz"
    np.savez(path, INPUT=golden["INPUT"][:, :32], reference__LOGITS=golden["reference__LOGITS"])
    canary = _canary(adapter, batch_sizes=[1], golden=path)
    with pytest.raises(GoldenSetError, match=r"short\.npz: INPUT: shape \(48, 32\)"):
        await canary.check()
    samples = await canary.once()
    assert [s.outcome for s in samples if isinstance(s, CanaryResult)] == ["bad_response"]


async def test_canary_group_dispatches_by_model(adapter: TritonAdapter) -> None:
    """CanaryGroup.check runs the canary of the named model and refuses unknown models."""
    group = CanaryGroup([_canary(adapter, batch_sizes=[2])])
    results = await group.check("digits")
    assert [(r.batch_size, r.outcome) for r in results] == [(2, "ok")]
    with pytest.raises(ValueError, match="no canary is configured for model 'other'"):
        await group.check("other")


async def test_health_probe_reads_server_and_metrics(
    triton_adapter: TritonAdapter, triton_server: LocalTriton
) -> None:
    """Health samples report live/ready, the ready version and Triton's success counter."""
    probe = TritonHealthProbe(triton_adapter, ["digits"], metrics_url=triton_server.metrics_url)
    try:
        before = (await probe.sample())[0]
        await _canary(triton_adapter, batch_sizes=[1, 2]).check()
        after = (await probe.sample())[0]
    finally:
        await probe.close()
    assert (
        after.live,
        after.ready,
        after.model_ready,
        after.model_versions,
    ) == (True, True, True, ("1",))
    assert before.success_total is not None
    assert after.success_total is not None
    assert after.success_total - before.success_total == 2.0
    assert (after.error, after.pending_requests) == (None, 0.0)


@pytest.fixture
async def dedicated_adapter(dedicated_triton: LocalTriton) -> AsyncIterator[TritonAdapter]:
    """The adapter (gRPC) for a server of the test's own."""
    adapter = make_adapter(dedicated_triton, "grpc", timeout_s=1.0)
    try:
        yield adapter
    finally:
        await adapter.close()


async def _wait_for(predicate: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_stopped_server_turns_up_to_zero_and_back(
    dedicated_triton: LocalTriton, dedicated_adapter: TritonAdapter
) -> None:
    """Probes keep running through a stop: up 1 -> 0 (canary unreachable) -> 1 after restart."""
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry)
    seen: list[Sample] = []

    async def sink(sample: Sample) -> None:
        seen.append(sample)
        metrics.observe(sample)

    def up() -> float | None:
        return registry.get_sample_value("sentinel_triton_up")

    clock = SystemClock()
    health = TritonHealthProbe(
        dedicated_adapter, ["digits"], metrics_url=dedicated_triton.metrics_url, interval_s=0.1
    )
    canary = _canary(dedicated_adapter, batch_sizes=[1], timeout_s=1.0)
    canary.settings = canary.settings.model_copy(update={"interval_s": 0.1})
    tasks = [asyncio.create_task(p.run(sink, clock)) for p in (health, canary)]
    try:
        await _wait_for(lambda: up() == 1.0)
        await asyncio.to_thread(dedicated_triton.stop)  # probes keep running meanwhile
        await _wait_for(lambda: up() == 0.0)
        await _wait_for(
            lambda: any(isinstance(s, CanaryResult) and s.outcome == "unreachable" for s in seen)
        )
        down = [s for s in seen if isinstance(s, TritonHealth) and not s.live]
        restarted_at = len(seen)
        await asyncio.to_thread(dedicated_triton.start)
        await _wait_for(lambda: up() == 1.0)
        await _wait_for(
            lambda: any(
                isinstance(s, CanaryResult) and s.outcome == "ok" for s in seen[restarted_at:]
            )
        )
        still_running = [not t.done() for t in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert still_running == [True, True]
    assert down[0].error is not None
    ready = registry.get_sample_value("sentinel_triton_model_ready", {"model": "digits"})
    assert ready == 1.0


async def test_a_server_frozen_after_answering_ready_is_down_in_that_round(
    dedicated_triton: LocalTriton, dedicated_adapter: TritonAdapter
) -> None:
    """A server that freezes between the ready check and the rest of a health round is
    reported not live by that round (not by the next), with a reason saying so."""
    pid = dedicated_triton.pid
    assert pid is not None
    check_ready = dedicated_adapter.check_ready

    async def ready_then_freeze() -> None:
        await check_ready()
        os.kill(pid, signal.SIGSTOP)

    dedicated_adapter.check_ready = ready_then_freeze  # type: ignore[method-assign]
    probe = TritonHealthProbe(
        dedicated_adapter, ["digits"], metrics_url=dedicated_triton.metrics_url, interval_s=1
    )
    try:
        samples = await probe.sample()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert [("digits", False, False)] == [(s.model, s.live, s.ready) for s in samples]
    # the live call in flight when it froze, or the index after it, says so
    error = samples[0].error or ""
    assert error.startswith("stopped answering after the health check") or "no answer" in error


class _Enough(Exception):
    """Ends a probe's run loop after the rounds a test wants."""


class _CountingClock(SystemClock):
    """Real time, but each sleep is recorded and returns at once (the n-th ends the run)."""

    def __init__(self, rounds: int) -> None:
        self.sleeps: list[float] = []
        self.rounds = rounds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if len(self.sleeps) >= self.rounds:
            raise _Enough


async def _schedule(
    adapter: TritonAdapter, rounds: int, seen: list[Sample] | None = None
) -> list[float]:
    """The delays a canary (interval 5 s, rechecks 1 s) chooses, judged by the real suite;
    the samples it sent go to ``seen``."""
    settings = CanarySettings.model_validate(
        {
            "model": "digits",
            "golden_set": str(GOLDEN_DIGITS),
            "batch_sizes": [1],
            "timeout_s": 5,
            "interval_s": 5,  # set here: the schedule's mechanism, not the defaults' values
            "recheck_interval_s": 1,
        }
    )
    suite = DetectorSuite(DetectorSettings())
    probe = CanaryProbe(adapter, settings, suspects=suite.suspects)

    async def sink(sample: Sample) -> None:
        suite.observe(sample)
        if seen is not None:
            seen.append(sample)

    clock = _CountingClock(rounds)
    with pytest.raises(_Enough):
        await probe.run(sink, clock)
    return clock.sleeps


async def test_failing_canaries_are_rechecked_until_the_burst_is_found(
    adapter: TritonAdapter, digits: ModelHandle
) -> None:
    """A failing model is rechecked after 1 s, not 5 s, until error_burst opens (3 canaries);
    a healthy one keeps the interval."""
    healthy = await _schedule(adapter, 3)
    digits.reconfigure(error_rate=1)
    failing = await _schedule(adapter, 4)
    assert ([5.0, 5.0, 5.0], [1.0, 1.0, 5.0, 5.0]) == (healthy, failing)


async def test_recheck_rounds_are_marked_as_rechecks(
    adapter: TritonAdapter, digits: ModelHandle
) -> None:
    """Rounds that came early because the model was suspect say so (baselines skip them);
    the scheduled rounds do not."""
    digits.reconfigure(error_rate=1)
    seen: list[Sample] = []
    delays = await _schedule(adapter, 4, seen)
    flags = [s.recheck for s in seen if isinstance(s, CanaryResult)]
    assert ([1.0, 1.0, 5.0, 5.0], [False, True, True, False]) == (delays, flags)


async def test_rechecks_in_a_row_are_capped(adapter: TritonAdapter, digits: ModelHandle) -> None:
    """A model suspected round after round is rechecked max_rechecks times, then waits the
    interval (and may be rechecked again after it)."""
    settings = CanarySettings.model_validate(
        {
            "model": "digits",
            "golden_set": str(GOLDEN_DIGITS),
            "max_rechecks": 2,
            "interval_s": 5,
            "recheck_interval_s": 1,
        }
    )
    probe = CanaryProbe(adapter, settings, suspects=lambda model: model == "digits")
    assert [1.0, 1.0, 5.0, 1.0] == [probe.next_delay() for _ in range(4)]
    probe.settings = settings.model_copy(update={"recheck_interval_s": None})
    assert 5.0 == probe.next_delay()
