"""Probes against a loopback server speaking hostile HTTP: deeply nested or huge answers,
errors included, become bad_response samples, never an exception out of the probe."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from triton_fixtures import GOLDEN_DIGITS

from sentinel.base.clock import FakeClock
from sentinel.probes.canary import CanaryProbe
from sentinel.probes.settings import CanarySettings
from sentinel.probes.triton_health import TritonHealthProbe
from sentinel.probes.triton_http import MAX_ERROR_BYTES, HttpTriton
from sentinel.testing.triton_local import free_port

DEEP = "[" * 200_000 + "]" * 200_000
DEEP_SMALL = "[" * 30_000 + "]" * 30_000  # deep, yet under the error-answer bound
DEEP_ERROR = '{"error": ' + "[" * 50 + "]" * 50 + "}"
MIB = 1024**2


@dataclass
class Answer:
    """What one route answers: a status and a body, streamed in chunks up to ``size``."""

    status: int = 200
    body: bytes = b""
    size: int = 0  # > 0: repeat ``body`` until this many bytes have gone out


@dataclass
class HostileTriton:
    """A loopback STAND-IN for Triton's HTTP endpoint with a digits model whose answers are
    configurable per path (metadata and config stay sane so the canary gets to infer)."""

    answers: dict[str, Answer] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    asked: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._route)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.asked.append(path)
        if path in self.answers:
            return await self._send(request, self.answers[path])
        if path == "/v2/models/digits":
            return web.json_response(
                {
                    "name": "digits",
                    "versions": ["1"],
                    "platform": "python",
                    "inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [-1, 64]}],
                    "outputs": [{"name": "LOGITS", "datatype": "FP32", "shape": [-1, 10]}],
                }
            )
        if path == "/v2/models/digits/config":
            return web.json_response({"name": "digits", "max_batch_size": 8})
        if path == "/v2/repository/index":
            return web.json_response([{"name": "digits", "version": "1", "state": "READY"}])
        return web.Response(text="")

    @staticmethod
    async def _send(request: web.Request, answer: Answer) -> web.StreamResponse:
        if answer.size <= 0:
            return web.Response(
                status=answer.status, body=answer.body, content_type="application/json"
            )
        response = web.StreamResponse(status=answer.status)
        response.content_type = "application/json"
        await response.prepare(request)
        sent = 0
        try:
            while sent < answer.size:
                await response.write(answer.body)
                sent += len(answer.body)
        except (ConnectionError, RuntimeError):  # the client stopped reading: expected
            pass
        return response


@pytest.fixture
async def hostile() -> AsyncIterator[HostileTriton]:
    """A started HostileTriton."""
    server = HostileTriton()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _canary(server: HostileTriton, max_answer_bytes: int = 64 * MIB) -> list[str]:
    adapter = HttpTriton(f"127.0.0.1:{server.port}", 10.0, max_answer_bytes=max_answer_bytes)
    settings = CanarySettings.model_validate(
        {"model": "digits", "golden_set": str(GOLDEN_DIGITS), "batch_sizes": [1]}
    )
    try:
        results = await CanaryProbe(adapter, settings, clock=FakeClock()).check()
    finally:
        await adapter.close()
    return [f"{r.outcome}: {r.error}" for r in results]


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (Answer(200, DEEP.encode()), "nested deeper than 32 levels"),
        (Answer(500, DEEP_SMALL.encode()), "nested deeper than 32 levels"),
        (Answer(400, DEEP_ERROR.encode()), "nested deeper than 32 levels"),
        (Answer(200, b"[" * 65536, size=8 * MIB), f"answer over {MIB} bytes"),
        (Answer(500, b"x" * 65536, size=8 * MIB), f"answer over {MAX_ERROR_BYTES} bytes"),
        (Answer(503, b"[" * 65536, size=2 * MAX_ERROR_BYTES), "answer over"),
    ],
)
async def test_hostile_inference_answer_is_a_bad_response_sample(
    hostile: HostileTriton, answer: Answer, why: str
) -> None:
    """A deep or huge inference answer, error or not, is one bad_response naming the bound."""
    hostile.answers["/v2/models/digits/infer"] = answer
    [result] = await _canary(hostile, max_answer_bytes=MIB)
    assert result.startswith("bad_response: ")
    assert why in result


async def test_plain_text_error_stays_a_server_error(hostile: HostileTriton) -> None:
    """An ordinary small non-JSON error answer is still Triton's error, kept verbatim."""
    hostile.answers["/v2/models/digits/infer"] = Answer(500, b"{backend crashed")
    [result] = await _canary(hostile)
    assert "server_error: HTTP 500: {backend crashed" == result


async def _health(server: HostileTriton) -> tuple[bool | None, ...]:
    adapter = HttpTriton(f"127.0.0.1:{server.port}", 10.0)
    probe = TritonHealthProbe(adapter, ["digits"], clock=FakeClock())
    try:
        (sample,) = await probe.sample()
    finally:
        await probe.close()
        await adapter.close()
    nested = "nested deeper than 32 levels" in (sample.error or "")
    return sample.live, sample.ready, sample.model_ready, nested


async def test_a_live_server_whose_ready_fails_is_live_and_not_ready(
    hostile: HostileTriton,
) -> None:
    """Live decides liveness: a failing ready (as Triton's HTTP ready can stall while a
    model loads) from a server that answers live is 'not ready', never 'dead'."""
    assert (True, True, True, False) == await _health(hostile)
    hostile.answers["/v2/health/ready"] = Answer(503, b'{"error": "not ready"}')
    assert (True, False, True, False) == await _health(hostile)


async def test_health_probe_survives_a_hostile_liveness_answer(hostile: HostileTriton) -> None:
    """A deeply nested liveness error gives a not-live sample saying why, not an exception."""
    hostile.answers["/v2/health/ready"] = Answer(503, b'{"error": "not ready"}')
    hostile.answers["/v2/health/live"] = Answer(500, DEEP_SMALL.encode())
    assert (False, False, None, True) == await _health(hostile)


async def test_health_probe_survives_hostile_readiness_answers(hostile: HostileTriton) -> None:
    """Deep readiness errors, a deep index and a huge model-ready answer are all 'not ready'."""
    hostile.answers["/v2/health/ready"] = Answer(503, DEEP_ERROR.encode())
    hostile.answers["/v2/repository/index"] = Answer(200, DEEP.encode())
    hostile.answers["/v2/models/digits/ready"] = Answer(400, b"[" * 4096, size=4 * MIB)
    assert (True, False, False, True) == await _health(hostile)


async def test_metrics_are_scraped_on_their_own_cadence(hostile: HostileTriton) -> None:
    """With health every 1 s and metrics every 2 s, every other round carries counters; the
    rounds between leave them None (unknown) instead of repeating old ones at a new time."""
    hostile.answers["/metrics"] = Answer(
        200, b'nv_inference_request_success{model="digits",version="1"} 5\n'
    )
    clock = FakeClock()
    adapter = HttpTriton(f"127.0.0.1:{hostile.port}", 10.0)
    probe = TritonHealthProbe(
        adapter,
        ["digits"],
        metrics_url=f"http://127.0.0.1:{hostile.port}/metrics",
        interval_s=1.0,
        metrics_interval_s=2.0,
        clock=clock,
    )
    seen = []
    try:
        for _ in range(5):
            (sample,) = await probe.sample()
            seen.append(sample.success_total)
            clock.set(clock.monotonic() + 1.0)
    finally:
        await adapter.close()
    assert [5.0, None, 5.0, None, 5.0] == seen
    assert 3 == hostile.asked.count("/metrics")
