"""LoadGenerator against a loopback stand-in of Triton's HTTP API (aiohttp): pacing,
bounded concurrency and the request body built from the model's metadata."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from sentinel.testing.load import LoadGenerator


class TritonStandIn:
    """Answers /v2/models/m (metadata) and /v2/models/m/infer after ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def metadata(self, request: web.Request) -> web.Response:
        inputs = [{"name": "INPUT", "datatype": "FP32", "shape": [-1, 4]}]
        return web.json_response({"name": "m", "inputs": inputs})

    async def infer(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.bodies.append(await request.json())
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        return web.json_response({"outputs": []})


async def _serve(standin: TritonStandIn) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/v2/models/m", standin.metadata)
    app.router.add_post("/v2/models/m/infer", standin.infer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def fast() -> AsyncIterator[tuple[TritonStandIn, str]]:
    standin = TritonStandIn(delay_s=0.0)
    async for url in _serve(standin):
        yield standin, url


@pytest.fixture
async def slow() -> AsyncIterator[tuple[TritonStandIn, str]]:
    standin = TritonStandIn(delay_s=2.0)
    async for url in _serve(standin):
        yield standin, url


async def test_sends_about_the_rate_with_a_body_from_metadata(
    fast: tuple[TritonStandIn, str],
) -> None:
    """20/s for 1.5 s sends about 30 requests, each with zeros of the input's shape."""
    standin, url = fast
    async with LoadGenerator(url, "m", rate_per_s=20) as load:
        await asyncio.sleep(1.5)
    assert 15 <= load.stats.ok <= 40
    assert 0 == load.stats.failed
    assert {"name": "INPUT", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]} == (
        standin.bodies[0]["inputs"][0]
    )


async def test_a_slow_server_gets_at_most_concurrency_and_the_rest_is_skipped(
    slow: tuple[TritonStandIn, str],
) -> None:
    """With every answer late, no more than `concurrency` are in flight; the others skip."""
    standin, url = slow
    load = LoadGenerator(url, "m", rate_per_s=50, concurrency=3)
    async with load:
        await asyncio.sleep(1.0)
    assert 3 == standin.most_in_flight
    assert 3 == load.stats.sent
    assert load.stats.skipped >= 20
    assert not load.running
