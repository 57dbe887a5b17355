"""Real traffic for a test bed: N requests a second to one model over Triton's HTTP API.

    async with LoadGenerator(server.http_url, "digits", rate_per_s=20) as load:
        ...                      # Triton's counters now see users' traffic
    print(load.stats)

Open loop: a request is due every ``1 / rate_per_s`` seconds whatever the server does,
as users' requests are; at most ``concurrency`` are in flight, and a request that falls
due while all of them are busy is counted as ``skipped`` instead of piling up (a slow
server must not make the generator's own memory grow). The request body is built from
the model's metadata (zeros of each input's shape, batch 1) unless one is given.
Requests go through aiohttp's client; answers are read up to :data:`MAX_ANSWER_BYTES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp

from sentinel.base.http_body import read_up_to

_DTYPE_ZERO: dict[str, Any] = {"BYTES": "", "BOOL": False}

MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""The most of an answer read; a larger one counts as failed (a test bed's models are small)."""

_JSON = {"Content-Type": "application/json"}


@dataclass
class LoadStats:
    """What the generator did (counts since start)."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    """Requests that fell due while ``concurrency`` were already in flight (not sent)."""
    latencies_s: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """Round-trip times of the latest successful requests (bounded)."""
    last_error: str | None = None


class LoadGenerator:
    """Sends ``rate_per_s`` requests a second to ``model``; an async context manager."""

    def __init__(
        self,
        http_url: str,
        model: str,
        rate_per_s: float,
        *,
        concurrency: int = 8,
        body: dict[str, Any] | None = None,
        batch_size: int = 1,
        timeout_s: float = 10.0,
    ) -> None:
        if rate_per_s <= 0 or concurrency < 1 or batch_size < 1:
            raise ValueError("rate_per_s must be > 0, concurrency and batch_size >= 1")
        base = http_url if "://" in http_url else f"http://{http_url}"
        self.base_url = base.rstrip("/")
        self.model = model
        self.rate_per_s = rate_per_s
        self.concurrency = concurrency
        self.body = body
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.stats = LoadStats()
        self._client: aiohttp.ClientSession | None = None
        self._payload = b""
        """The body, encoded once: every request sends the same."""
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> LoadGenerator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Build the request (from the model's metadata unless given) and start sending."""
        if self.running:
            return
        t = self.timeout_s  # per phase: connecting and each read
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.concurrency),
            timeout=aiohttp.ClientTimeout(total=None, connect=t, sock_connect=t, sock_read=t),
            trust_env=True,
        )
        try:
            if self.body is None:
                self.body = await self._body_from_metadata()
        except BaseException:
            await self._client.close()
            self._client = None
            raise
        self._payload = json.dumps(self.body).encode()
        self._task = asyncio.create_task(self._pace(), name=f"load-{self.model}")

    async def stop(self) -> None:
        """Stop sending; requests in flight are cancelled. Stats are kept."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for t in list(self._in_flight):
            t.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        step = 1.0 / self.rate_per_s
        due = loop.time()
        while True:
            if len(self._in_flight) >= self.concurrency:
                self.stats.skipped += 1
            else:
                t = asyncio.create_task(self._one())
                self._in_flight.add(t)
                t.add_done_callback(self._in_flight.discard)
            due += step
            now = loop.time()
            if due < now - 1.0:  # the loop stalled: skip what it missed, no burst after
                missed = int((now - due) / step)
                self.stats.skipped += missed
                due += missed * step
            await asyncio.sleep(max(0.0, due - now))

    async def _one(self) -> None:
        assert self._client is not None
        self.stats.sent += 1
        started = time.perf_counter()
        url = f"{self.base_url}/v2/models/{self.model}/infer"
        try:
            async with self._client.post(
                url, data=self._payload, headers=_JSON, allow_redirects=False
            ) as response:
                status = response.status
                raw = await read_up_to(response, MAX_ANSWER_BYTES)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.stats.failed += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            return
        if status == 200 and len(raw) <= MAX_ANSWER_BYTES:
            self.stats.ok += 1
            self.stats.latencies_s.append(time.perf_counter() - started)
        elif status == 200:
            self.stats.failed += 1
            self.stats.last_error = f"answer larger than {MAX_ANSWER_BYTES} bytes"
        else:
            self.stats.failed += 1
            self.stats.last_error = f"{status}: {raw[:200].decode('utf-8', errors='replace')}"

    async def _body_from_metadata(self) -> dict[str, Any]:
        assert self._client is not None
        url = f"{self.base_url}/v2/models/{self.model}"
        async with self._client.get(url, allow_redirects=False) as response:
            response.raise_for_status()
            raw = await read_up_to(response, MAX_ANSWER_BYTES)
        if len(raw) > MAX_ANSWER_BYTES:
            raise ValueError(f"{url}: metadata larger than {MAX_ANSWER_BYTES} bytes")
        meta = json.loads(raw)
        inputs = []
        for spec in meta.get("inputs", []):
            # a batching model's metadata shows the batch dimension as -1
            shape = [self.batch_size if d == -1 else int(d) for d in spec["shape"]]
            count = 1
            for d in shape:
                count *= max(d, 1)
            zero = _DTYPE_ZERO.get(spec["datatype"], 0)
            inputs.append(
                {
                    "name": spec["name"],
                    "shape": shape,
                    "datatype": spec["datatype"],
                    "data": [zero] * count,
                }
            )
        return {"inputs": inputs}
