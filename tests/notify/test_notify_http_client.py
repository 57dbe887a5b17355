"""The notifiers' HTTP client against real loopback servers: what "not sent" and "may have
arrived" mean, no redirects, bounded answers, and no webhook URL in an error."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from sentinel.base.clock import FakeClock
from sentinel.notify.http import MAX_ANSWER_BYTES, HttpClient, describe, transport_failure
from sentinel.notify.outbox import (
    DeliveryError,
    Outbox,
    OutboxRow,
    RetryableDelivery,
    UncertainDelivery,
)
from sentinel.notify.settings import SlackSettings
from sentinel.notify.slack import SlackNotifier, SlackWebApi

SECRET_PATH = "/services/T0SECRET/B0SECRET/x0secretwebhookpath"


class StandInService:
    """A stand-in HTTP service on 127.0.0.1 whose answers each test picks."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.release = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> StandInService:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        if request.path.startswith("/hang"):
            await self.release.wait()
        if request.path == "/redirect":
            raise web.HTTPFound(self.url("/elsewhere"))
        if request.path == "/huge":
            return web.Response(body=b"[" + b"1," * MAX_ANSWER_BYTES + b"1]")
        if request.path == "/api/chat.postMessage":
            return web.Response(body=b" " * (MAX_ANSWER_BYTES + 10) + b'{"ok": true}')
        return web.json_response({"ok": True, "user_agent": request.headers["User-Agent"]})


@pytest.fixture
async def service() -> AsyncIterator[StandInService]:
    server = await StandInService().start()
    yield server
    server.release.set()
    assert server.runner is not None
    await server.runner.cleanup()


@pytest.fixture
def outbox(conn: sqlite3.Connection, clock: FakeClock) -> Outbox:
    return Outbox(conn, clock)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def _webhook_error(outbox: Outbox, url: str, timeout_s: float) -> DeliveryError:
    """What a webhook-only Slack notifier raises for one post to ``url``."""
    settings = SlackSettings(enabled=True, webhook_url=SecretStr(url), timeout_s=timeout_s)
    notifier = SlackNotifier(settings)
    row = OutboxRow(1, "slack/k", "slack", None, "post", {"text": "hello"}, "sending", 0, 0, 0)
    try:
        with pytest.raises(DeliveryError) as caught:
            await notifier.deliver(row, outbox)
    finally:
        await notifier.aclose()
    return caught.value


async def test_refused_connection_is_not_sent_and_names_no_url(outbox: Outbox) -> None:
    """A refused connection is a plain retry (not sent), and the error hides the webhook path."""
    error = await _webhook_error(outbox, f"http://127.0.0.1:{_closed_port()}{SECRET_PATH}", 5)
    assert isinstance(error, RetryableDelivery)
    assert not isinstance(error, UncertainDelivery)
    assert "secret" not in error.reason.lower()
    assert error.__suppress_context__  # the cause, which may name the URL, is not chained


async def test_unanswered_request_may_have_arrived(service: StandInService, outbox: Outbox) -> None:
    """Connected, sent, no answer within the read timeout: uncertain, reconcile first."""
    error = await _webhook_error(outbox, service.url("/hang" + SECRET_PATH), 0.5)
    assert isinstance(error, UncertainDelivery)
    assert "secret" not in error.reason.lower()
    assert ["/hang" + SECRET_PATH] == service.hits


async def test_redirect_is_not_followed(service: StandInService) -> None:
    """A 302 is the answer: the client does not carry the request to the new place."""
    client = HttpClient(5)
    try:
        answer = await client.post(service.url("/redirect"), {"text": "x"})
    finally:
        await client.aclose()
    assert (302, ["/redirect"]) == (answer.status, service.hits)


async def test_answer_is_read_to_a_bound(service: StandInService) -> None:
    """A body past MAX_ANSWER_BYTES is cut there and is not parsed as JSON."""
    client = HttpClient(5, base_url=service.url("/"))
    try:
        answer = await client.request("GET", "/huge")
        small = await client.request("GET", "small")
    finally:
        await client.aclose()
    assert (MAX_ANSWER_BYTES, False) == (len(answer.content), answer.complete)
    with pytest.raises(ValueError, match="longer than"):
        answer.json()
    assert (200, True) == (small.status, small.complete)
    assert small.json()["user_agent"].startswith("triton-sentinel/")


async def test_slack_over_long_answer_is_uncertain(service: StandInService) -> None:
    """Slack's answer past the bound counts as no JSON body: the post may have arrived."""
    web_api = SlackWebApi("xoxb-test", service.url("/api"), 5)
    try:
        with pytest.raises(UncertainDelivery, match="without a JSON body"):
            await web_api.post("chat.postMessage", {"channel": "C1", "text": "x"})
    finally:
        await web_api.aclose()


@pytest.mark.parametrize(
    "exc",
    [
        aiohttp.ConnectionTimeoutError(f"Connection timeout to host http://h{SECRET_PATH}"),
        aiohttp.InvalidURL(f"hooks.example{SECRET_PATH}", "no scheme"),
    ],
    ids=["connect-timeout", "invalid-url"],
)
def test_error_description_drops_urls(exc: aiohttp.ClientError) -> None:
    """aiohttp errors that quote the URL are described without it, by their type."""
    text = describe(exc)
    assert text.startswith(type(exc).__name__)
    assert "secret" not in text.lower()


@pytest.mark.parametrize(
    ("exc", "may_have_arrived"),
    [
        (aiohttp.ConnectionTimeoutError("Connection timeout to host http://h/"), False),
        (aiohttp.NonHttpUrlClientError("ftp://h/"), False),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), True),
        (aiohttp.ServerDisconnectedError(), True),
        (aiohttp.ClientPayloadError("Response payload is not completed"), True),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), True),
        (TimeoutError(), True),
    ],
    ids=[
        "connect-timeout",
        "not-http",
        "read-timeout",
        "disconnected",
        "payload",
        "reset",
        "total",
    ],
)
def test_transport_errors_are_sorted_into_not_sent_and_uncertain(
    exc: BaseException, may_have_arrived: bool
) -> None:
    """Failures before the request left are plain retries; any later one may have arrived."""
    error = transport_failure("slack", exc)
    assert isinstance(error, RetryableDelivery)
    assert may_have_arrived == isinstance(error, UncertainDelivery)
