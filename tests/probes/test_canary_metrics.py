"""Probe metrics from samples, Triton metrics parsing, and canaries against garbage servers."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from triton_fixtures import GOLDEN_DIGITS

from sentinel.base.clock import FakeClock
from sentinel.probes.canary import CanaryProbe
from sentinel.probes.metrics import ProbeMetrics
from sentinel.probes.settings import CanarySettings
from sentinel.probes.triton_health import TritonHealthProbe, parse_triton_metrics
from sentinel.probes.triton_http import HttpTriton
from sentinel.testing.triton_local import free_port
from sentinel.vocabulary.samples import Agreement, CanaryResult, Sample, TritonHealth

TRITON_METRICS = """\
# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="digits",version="1"} 40
nv_inference_request_success{model="digits",version="2"} 2
# HELP nv_inference_request_failure Number of failed inference requests
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="digits",reason="BACKEND",version="1"} 3
nv_inference_request_failure{model="digits",reason="REJECTED",version="1"} 1
# HELP nv_inference_pending_request_count Instantaneous number of pending requests
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{model="digits",version="1"} 5
# HELP nv_inference_request_duration_us Cumulative inference request duration
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{model="digits",version="1"} 1200
# HELP nv_inference_queue_duration_us Cumulative inference queuing duration
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="digits",version="1"} 300
# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]
# TYPE nv_cpu_utilization gauge
nv_cpu_utilization 0.25
"""


def _result(outcome: str, latency: float | None, agreement: Agreement | None) -> CanaryResult:
    return CanaryResult(
        ts=1.0,
        model="digits",
        version="1",
        batch_size=8,
        outcome=outcome,  # type: ignore[arg-type]
        latency_s=latency,
        agreement=agreement,
    )


def test_canary_samples_feed_counters_histogram_and_agreement() -> None:
    """Every canary counts by outcome; only ok ones feed latency and agreement."""
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry)
    metrics.observe(_result("ok", 0.07, Agreement(0.5, 0.99, 0.75, 0.8)))
    metrics.observe(_result("server_error", 0.01, None))
    metrics.observe(_result("timeout", None, None))

    def get(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert (1.0, 1.0, 1.0) == tuple(
        get("sentinel_canary_requests_total", model="digits", batch_size="8", outcome=o)
        for o in ("ok", "server_error", "timeout")
    )
    latency = {"model": "digits", "version": "1", "batch_size": "8"}
    assert 1.0 == get("sentinel_canary_latency_seconds_count", **latency)
    assert 0.0 == get("sentinel_canary_latency_seconds_bucket", le="0.05", **latency)
    assert 1.0 == get("sentinel_canary_latency_seconds_bucket", le="0.1", **latency)
    assert {"max_abs_error": 0.5, "cosine": 0.99, "top1": 0.75, "accuracy": 0.8} == {
        m: get("sentinel_canary_agreement", model="digits", batch_size="8", metric=m)
        for m in ("max_abs_error", "cosine", "top1", "accuracy")
    }


def test_triton_health_sets_up_and_model_ready() -> None:
    """sentinel_triton_up follows live; model_ready follows the model's readiness."""
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry)
    metrics.observe(TritonHealth(ts=1.0, live=True, ready=True, model="digits", model_ready=True))
    up_then = registry.get_sample_value("sentinel_triton_up")
    metrics.observe(TritonHealth(ts=2.0, live=False, ready=False, model="digits", error="refused"))
    assert (1.0, 0.0, 0.0) == (
        up_then,
        registry.get_sample_value("sentinel_triton_up"),
        registry.get_sample_value("sentinel_triton_model_ready", {"model": "digits"}),
    )


@pytest.mark.promtool
def test_exposition_passes_promtool_lint() -> None:
    """promtool check metrics finds nothing wrong with the names, units and help texts."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry)
    metrics.observe(_result("ok", 0.07, Agreement(0.5, 0.99, 0.75, 0.8)))
    metrics.observe(TritonHealth(ts=1.0, live=True, ready=True, model="digits", model_ready=True))
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        check=False,
    )
    assert (0, b"") == (checked.returncode, checked.stdout + checked.stderr)


def test_parse_triton_metrics_sums_versions_and_reasons() -> None:
    """Per-model counters sum over versions; failures are kept by reason."""
    counters = parse_triton_metrics(TRITON_METRICS)["digits"]
    assert (42.0, 4.0, {"BACKEND": 3.0, "REJECTED": 1.0}, 5.0, 1200.0, 300.0) == (
        counters.success,
        counters.failure,
        counters.failures_by_reason,
        counters.pending,
        counters.request_duration_us,
        counters.queue_duration_us,
    )


# -- a loopback server speaking (broken) KServe v2 -----------------------------


class BrokenTriton:
    """A real HTTP server on loopback with a valid digits model description whose
    infer and metrics answers each test sets."""

    def __init__(self) -> None:
        self.infer_body = "{}"
        self.metrics_body = TRITON_METRICS
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v2/health/live", self._ok)
        app.router.add_get("/v2/health/ready", self._ok)
        app.router.add_get("/v2/models/digits/ready", self._ok)
        app.router.add_get("/v2/models/digits", self._metadata)
        app.router.add_get("/v2/models/digits/config", self._config)
        app.router.add_post("/v2/models/digits/infer", self._infer)
        app.router.add_post("/v2/repository/index", self._index)
        app.router.add_get("/metrics", self._metrics)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _ok(self, _: web.Request) -> web.Response:
        return web.Response(text="")

    async def _metadata(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": "digits",
                "versions": ["1"],
                "platform": "python",
                "inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [-1, 64]}],
                "outputs": [{"name": "LOGITS", "datatype": "FP32", "shape": [-1, 10]}],
            }
        )

    async def _config(self, _: web.Request) -> web.Response:
        return web.json_response({"name": "digits", "max_batch_size": 8})

    async def _infer(self, _: web.Request) -> web.Response:
        return web.Response(text=self.infer_body, content_type="application/json")

    async def _index(self, _: web.Request) -> web.Response:
        return web.Response(text="not a list", content_type="application/json")

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(text=self.metrics_body)


@pytest.fixture
async def broken_triton() -> AsyncIterator[BrokenTriton]:
    """A started BrokenTriton."""
    server = BrokenTriton()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _logits(shape: list[int], datatype: str = "FP32") -> str:
    n = 1
    for d in shape:
        n *= d
    return json.dumps(
        {"outputs": [{"name": "LOGITS", "datatype": datatype, "shape": shape, "data": [0.5] * n}]}
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{{{", "not JSON"),
        (_logits([2, 10]), "shape (2, 10), expected (1, 10)"),
        (_logits([1, 10], "FP64"), "dtype float64, model says FP32"),
        (
            json.dumps(
                {"outputs": [{"name": "OTHER", "datatype": "FP32", "shape": [1], "data": [1]}]}
            ),
            "no output LOGITS",
        ),
    ],
)
async def test_garbage_answers_become_bad_response(
    broken_triton: BrokenTriton, body: str, error: str
) -> None:
    """A wrong shape, dtype, output or non-JSON answer is a bad_response naming the problem."""
    broken_triton.infer_body = body
    adapter = HttpTriton(f"127.0.0.1:{broken_triton.port}", 2.0)
    settings = CanarySettings.model_validate(
        {"model": "digits", "golden_set": str(GOLDEN_DIGITS), "batch_sizes": [1]}
    )
    try:
        results = await CanaryProbe(adapter, settings, clock=FakeClock()).check()
    finally:
        await adapter.close()
    assert [("bad_response", True)] == [(r.outcome, error in (r.error or "")) for r in results]


async def test_health_probe_survives_garbage(broken_triton: BrokenTriton) -> None:
    """Garbage index and metrics leave those fields empty; live/ready still reported."""
    broken_triton.metrics_body = "this is { not prometheus"
    adapter = HttpTriton(f"127.0.0.1:{broken_triton.port}", 2.0)
    probe = TritonHealthProbe(
        adapter, ["digits"], metrics_url=f"http://127.0.0.1:{broken_triton.port}/metrics"
    )
    try:
        (sample,) = await probe.sample()
    finally:
        await probe.close()
        await adapter.close()
    assert (True, True, True, (), None) == (
        sample.live,
        sample.ready,
        sample.model_ready,
        sample.model_versions,
        sample.success_total,
    )


async def test_health_probe_reports_unreachable_with_reason() -> None:
    """Nothing listening: live False, ready False, the reason kept, model readiness unknown."""
    adapter = HttpTriton(f"127.0.0.1:{free_port()}", 1.0)
    probe = TritonHealthProbe(adapter, ["digits"], clock=FakeClock())
    try:
        (sample,) = await probe.sample()
    finally:
        await probe.close()
        await adapter.close()
    assert (False, False, None) == (sample.live, sample.ready, sample.model_ready)
    assert "GET /v2/health/live" in (sample.error or "")  # live decides liveness


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_run_keeps_its_interval_on_the_injected_clock(broken_triton: BrokenTriton) -> None:
    """run() does one round at start and one per interval_s of the (fake) clock, no more."""
    broken_triton.infer_body = _logits([1, 10])
    adapter = HttpTriton(f"127.0.0.1:{broken_triton.port}", 2.0)
    settings = CanarySettings.model_validate(
        {"model": "digits", "golden_set": str(GOLDEN_DIGITS), "batch_sizes": [1], "interval_s": 30}
    )
    clock = FakeClock()
    seen: list[Sample] = []

    async def sink(sample: Sample) -> None:
        seen.append(sample)

    task = asyncio.create_task(CanaryProbe(adapter, settings, clock=clock).run(sink, clock))
    try:
        await _until(lambda: len(seen) == 1)
        await clock.advance(29)
        await asyncio.sleep(0.05)
        early = len(seen)
        await clock.advance(1)
        await _until(lambda: len(seen) == 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await adapter.close()
    assert early == 1
    assert [clock.now() - 30, clock.now()] == [s.ts for s in seen]
