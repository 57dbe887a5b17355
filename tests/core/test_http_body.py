"""Answers read within a bound, whole even when they arrive in many pieces."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from sentinel.base.http_body import BodyTooLarge, read_up_to, read_within
from sentinel.testing.triton_local import free_port

PIECE = b"x" * 1000


async def _slow(request: web.Request) -> web.StreamResponse:
    """A loopback server that sends its body in pieces, pausing between them, and with no
    Content-Length (chunked), as a busy server or a long list does."""
    pieces = int(request.query["pieces"])
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(pieces):
        await response.write(PIECE)
        await asyncio.sleep(0.005)
    await response.write_eof()
    return response


@pytest.fixture
async def url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/slow", _slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/slow"
    finally:
        await runner.cleanup()


async def test_a_body_in_many_pieces_is_read_whole(url: str) -> None:
    """StreamReader.read(n) stops at what is buffered; these read to the end."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}?pieces=20") as resp:
            assert 20 * PIECE == await read_within(resp, 64_000)
        async with session.get(f"{url}?pieces=20") as resp:
            assert 20 * PIECE == await read_up_to(resp, 64_000)


async def test_past_the_bound_is_refused_or_cut_one_byte_over(url: str) -> None:
    """read_within raises BodyTooLarge; read_up_to returns limit + 1 bytes."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}?pieces=20") as resp:
            with pytest.raises(BodyTooLarge, match="over 5000 bytes"):
                await read_within(resp, 5000)
        async with session.get(f"{url}?pieces=20") as resp:
            assert 5001 == len(await read_up_to(resp, 5000))
