"""The notifiers' one HTTP stack: an aiohttp ``ClientSession`` per notifier (opened on
first use, inside the running loop), one attempt per send, a bounded answer, and the
mapping of what went wrong onto the outbox's delivery errors.

Retries are not done here: the outbox owns them (backoff, ``Retry-After``, reconcile
before resend), so a client never sleeps or resends on its own.
"""

from __future__ import annotations

import functools
import json
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from sentinel import __version__
from sentinel.base.http_body import read_up_to
from sentinel.notify.outbox import RetryableDelivery, UncertainDelivery

USER_AGENT = f"triton-sentinel/{__version__}"
MAX_ANSWER_BYTES = 4 * 2**20
"""The most of an answer read (Slack's 200-message history pages are well under it);
a longer one is cut there and is not JSON (:meth:`Answer.json` refuses it)."""

# the wire format the notifiers have always sent: compact UTF-8; NaN refused, not sent as bad JSON
_JSON = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True, slots=True)
class Answer:
    """A response read to its end (or to :data:`MAX_ANSWER_BYTES`)."""

    status: int
    headers: CIMultiDictProxy[str]
    content: bytes
    complete: bool
    """False when the body went past the bound and was cut."""

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON (or was cut)."""
        if not self.complete:
            raise ValueError(f"answer longer than {MAX_ANSWER_BYTES} bytes")
        return json.loads(self.content)


class HttpClient:
    """One session with a per-phase timeout (connect, each read) of ``timeout_s``;
    ``ca_file`` is an extra CA bundle to trust instead of the system's; a relative URL
    is appended to ``base_url``."""

    def __init__(self, timeout_s: float, ca_file: Path | None = None, base_url: str = "") -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._ssl: ssl.SSLContext | bool = True
        if ca_file is not None:
            self._ssl = ssl.create_default_context(cafile=str(ca_file))
        self._base = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One request; raises what :data:`TRANSPORT_ERRORS` names when no answer came."""
        if self._session is None:  # here, not in __init__: a session needs a running loop
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"User-Agent": USER_AGENT},
                trust_env=True,  # HTTPS_PROXY / NO_PROXY, as the SDKs honoured them
                json_serialize=_JSON,
            )
        async with self._session.request(
            method,
            self._url(url),
            json=json,
            params=params,
            headers=headers,
            ssl=self._ssl,
            allow_redirects=False,  # a redirect would carry a token or key somewhere else
        ) as resp:
            body = await read_up_to(resp, MAX_ANSWER_BYTES)
            complete = len(body) <= MAX_ANSWER_BYTES
            return Answer(resp.status, resp.headers, body[:MAX_ANSWER_BYTES], complete)

    async def post(self, url: str, json: Any) -> Answer:
        return await self.request("POST", url, json=json)

    def _url(self, url: str) -> str:
        if not self._base or "://" in url:
            return url
        return f"{self._base}/{url.lstrip('/')}"

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def retry_after(headers: CIMultiDictProxy[str], default: float | None = None) -> float | None:
    """The ``Retry-After`` header in seconds (the delta form), else ``default``."""
    raw = headers.get("Retry-After")
    try:
        return float(raw) if raw is not None else default
    except ValueError:
        return default


NOT_SENT = (
    aiohttp.ClientConnectorError,  # refused, DNS, TLS handshake, proxy connect
    aiohttp.ConnectionTimeoutError,  # no connection (or pool slot) in time
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
)
"""Failures before any byte of the request left: it surely did not arrive."""

TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
"""What a send can raise besides an answer (socket and TLS errors, read timeouts)."""

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


def describe(exc: BaseException) -> str:
    """The error's type and text with any URL in it cut out (aiohttp names the URL in
    some errors, and a webhook URL is a secret)."""
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        return type(exc).__name__  # their whole text is the URL, scheme or not
    return f"{type(exc).__name__}: {_URL.sub('<url>', str(exc))}".rstrip(": ")


def transport_failure(service: str, exc: BaseException) -> RetryableDelivery:
    """Not connected: surely not sent (retry). Connected, then no answer: it may have
    arrived (reconcile before resending). Raise it ``from None``: the cause's text
    may hold the URL."""
    what = f"{service} connection error: {describe(exc)}"
    if isinstance(exc, NOT_SENT):
        return RetryableDelivery(what)
    return UncertainDelivery(what)
