"""Recording loopback servers speaking the Slack, PagerDuty and Alertmanager wire formats.

Real HTTP(S) servers (aiohttp) on 127.0.0.1 that answer like the services do:
point sentinel's notify settings at ``base_url`` / ``url``, let it deliver, and
assert on what the server accepted. A test scripts failures (429 with
Retry-After, 500, a garbage body) by appending :class:`Failure` entries to
``script``, and a slow Slack with ``SlackServer.delays``.

- :class:`SlackServer`: the Web API methods sentinel uses (post, update, history, replies).
- :class:`PagerDutyServer`: Events API v2 over HTTPS (sentinel's settings insist on
  https), with a self-signed certificate made by the ``openssl`` CLI; pass
  ``cert`` as ``ca_file``.
- :class:`AlertmanagerServer`: ``POST /api/v2/alerts``.

:func:`drain` delivers a dispatcher's outbox to the end under a FakeClock.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from sentinel.base.clock import FakeClock
    from sentinel.notify.dispatcher import Dispatcher


@dataclass
class Failure:
    """One scripted answer instead of success."""

    status: int
    retry_after: float | None = None
    body: str | None = None
    """A raw body instead of the service's own error (e.g. a proxy's HTML page)."""
    content_type: str = "text/plain"


@dataclass
class _Base:
    script: list[Failure] = field(default_factory=list)
    """Answers for the next requests, in order; empty means succeed."""
    requests: int = 0
    runner: web.AppRunner | None = None
    port: int = 0

    def _scripted(self) -> web.Response | None:
        self.requests += 1
        if not self.script:
            return None
        f = self.script.pop(0)
        headers = {"Retry-After": f"{f.retry_after:g}"} if f.retry_after is not None else {}
        if f.body is not None:
            return web.Response(
                status=f.status, text=f.body, content_type=f.content_type, headers=headers
            )
        if f.status == 429:
            body = {"ok": False, "error": "ratelimited", "status": "throttle event"}
            return web.json_response(body, status=429, headers=headers)
        return web.Response(status=f.status, text="upstream exploded", headers=headers)

    async def _start(self, app: web.Application, ssl_context: ssl.SSLContext | None = None) -> None:
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass
class SlackServer(_Base):
    """chat.postMessage / chat.update / conversations.history / conversations.replies."""

    token: str = "xoxb-test-token"  # noqa: S105 -- the stand-in's own, not a secret
    messages: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    _ts: int = 0
    hold: asyncio.Event | None = None
    """When set, a posted message is recorded but the answer waits for this event."""
    delays: list[float] = field(default_factory=list)
    """Seconds the next posts' answers wait (each recorded first), in order: a slow Slack."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    async def start(self) -> SlackServer:
        app = web.Application()
        app.router.add_post("/api/chat.postMessage", self._post)
        app.router.add_post("/api/chat.update", self._update)
        app.router.add_get("/api/conversations.history", self._history)
        app.router.add_get("/api/conversations.replies", self._replies)
        await self._start(app)
        return self

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if request.method == "GET":
            return dict(request.query)
        if request.content_type == "application/json":
            return dict(await request.json())
        return dict(await request.post())

    async def _post(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        failed = self._scripted()
        if failed is not None:
            return failed
        if not body.get("channel"):
            return web.json_response({"ok": False, "error": "channel_not_found"})
        self._ts += 1
        ts = f"{int(time.time())}.{self._ts:06d}"  # like Slack: wall-clock seconds
        metadata = body.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        self.messages.append({**body, "ts": ts, "metadata": metadata})
        if self.hold is not None:
            await self.hold.wait()
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        return web.json_response({"ok": True, "channel": body["channel"], "ts": ts})

    async def _update(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        failed = self._scripted()
        if failed is not None:
            return failed
        if not any(m["ts"] == body.get("ts") for m in self.messages):
            return web.json_response({"ok": False, "error": "message_not_found"})
        self.updates.append(body)
        return web.json_response({"ok": True, "channel": body["channel"], "ts": body["ts"]})

    async def _history(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        oldest = float(body.get("oldest") or 0)
        top = [m for m in self.messages if not m.get("thread_ts") and float(m["ts"]) >= oldest]
        return web.json_response({"ok": True, "messages": top[::-1], "has_more": False})

    async def _replies(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        thread = [m for m in self.messages if body.get("ts") in (m["ts"], m.get("thread_ts"))]
        return web.json_response({"ok": True, "messages": thread, "has_more": False})

    def roots(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if not m.get("thread_ts")]

    def idem_keys(self) -> list[str]:
        return [m["metadata"]["event_payload"]["idem"] for m in self.messages]


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class PagerDutyServer(_Base):
    """Events API v2 over HTTPS: /v2/enqueue (202 + dedup_key) and /v2/change/enqueue."""

    routing_key: str = "R0UTINGKEY0123456789012345678901"
    other_routing_keys: list[str] = field(default_factory=list)
    """More integration keys it accepts (other services, for routes); each event keeps
    the ``routing_key`` it came with."""
    events: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    cert: Path | None = None

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self, folder: Path) -> PagerDutyServer:
        self.cert, key = make_certificate(folder)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, key)
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._enqueue)
        app.router.add_post("/v2/change/enqueue", self._change)
        await self._start(app, ctx)
        return self

    async def _check(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = dict(await request.json())
        except ValueError:
            return web.json_response({"status": "invalid event", "message": "bad json"}, status=400)
        if body.get("routing_key") not in (self.routing_key, *self.other_routing_keys):
            return web.json_response(
                {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": ["Invalid routing key"],
                },
                status=400,
            )
        failed = self._scripted()
        return failed if failed is not None else body

    async def _enqueue(self, request: web.Request) -> web.Response:
        body = await self._check(request)
        if isinstance(body, web.Response):
            return body
        self.events.append(body)
        key = body.get("dedup_key") or f"srv-{len(self.events)}"
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": key}, status=202
        )

    async def _change(self, request: web.Request) -> web.Response:
        body = await self._check(request)
        if isinstance(body, web.Response):
            return body
        self.changes.append(body)
        return web.json_response(
            {"status": "success", "message": "Change event processed"}, status=202
        )

    def actions(self) -> list[tuple[str, str]]:
        return [(e["event_action"], e["dedup_key"]) for e in self.events]


@dataclass
class AlertmanagerServer(_Base):
    """Alertmanager's v2 API: ``POST /api/v2/alerts`` takes a JSON list of alerts."""

    posts: list[list[dict[str, Any]]] = field(default_factory=list)
    """Each accepted request's alerts, in order."""

    @property
    def url(self) -> str:
        """The base URL for ``AlertmanagerSettings.url``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> AlertmanagerServer:
        app = web.Application()
        app.router.add_post("/api/v2/alerts", self._alerts)
        await self._start(app)
        return self

    async def _alerts(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"code": 400, "message": "bad json"}, status=400)
        if not isinstance(body, list) or not all(isinstance(a, dict) for a in body):
            return web.json_response({"code": 400, "message": "expected a list"}, status=400)
        failed = self._scripted()
        if failed is not None:
            return failed
        self.posts.append(body)
        return web.Response(status=200)

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert accepted so far, oldest first."""
        return [a for batch in self.posts for a in batch]

    def firing(self) -> dict[str, dict[str, Any]]:
        """The latest alert per incident (``incident_id`` annotation), where not yet ended."""
        latest: dict[str, dict[str, Any]] = {}
        for a in self.alerts():
            latest[str(a.get("annotations", {}).get("incident_id", ""))] = a
        return {k: a for k, a in latest.items() if not a.get("endsAt")}


async def drain(dispatcher: Dispatcher, clock: FakeClock, rounds: int = 500) -> int:
    """Deliver until the outbox is empty, jumping the fake clock to each due time.

    Returns the number of delivery rounds it took.
    """
    for i in range(rounds):
        nxt = await dispatcher.deliver_due()
        if nxt is None:
            return i
        wait = nxt - clock.now()
        if wait > 0:
            clock.set(clock.monotonic() + wait)
    raise AssertionError("the outbox did not drain")
