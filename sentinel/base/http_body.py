"""Reading an HTTP answer's body within a bound, for every aiohttp client in sentinel."""

from __future__ import annotations

import aiohttp


class BodyTooLarge(ValueError):
    """An answer's body went past the bound set for it; the rest was left unread."""


async def read_within(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as more than ``limit`` bytes arrive.

    ``StreamReader.read(n)`` returns what is buffered, not n bytes, so a bound needs
    this loop; a declared Content-Length past the bound is refused before reading.
    """
    if (response.content_length or 0) > limit:
        raise BodyTooLarge(f"HTTP {response.status} answer over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"HTTP {response.status} answer over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_up_to(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or its first ``limit + 1`` bytes when it is longer (so a caller can tell
    one past the bound); the rest is left unread."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[: limit + 1]
