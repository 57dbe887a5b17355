"""The notifiers' one HTTP stack: an ``httpx.AsyncClient`` per notifier, one attempt per
send, and the mapping of what went wrong onto the outbox's delivery errors.

Retries are not done here: the outbox owns them (backoff, ``Retry-After``, reconcile
before resend), so a client never sleeps or resends on its own.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from sentinel import __version__
from sentinel.notify.outbox import RetryableDelivery, UncertainDelivery

USER_AGENT = f"triton-sentinel/{__version__}"


def async_client(
    timeout_s: float, ca_file: Path | None = None, base_url: str = ""
) -> httpx.AsyncClient:
    """A client with a per-phase timeout (connect, write, each read) of ``timeout_s``;
    ``ca_file`` is an extra CA bundle to trust instead of the system's."""
    verify: ssl.SSLContext | bool = True
    if ca_file is not None:
        verify = ssl.create_default_context(cafile=str(ca_file))
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s),
        verify=verify,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,  # a redirect would carry a token or key somewhere else
        trust_env=True,  # HTTPS_PROXY / NO_PROXY, as the SDKs honoured them
    )


def retry_after(headers: httpx.Headers, default: float | None = None) -> float | None:
    """The ``Retry-After`` header in seconds (the delta form), else ``default``."""
    raw = headers.get("Retry-After")
    try:
        return float(raw) if raw is not None else default
    except ValueError:
        return default


NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
"""Failures before any byte of the request left: it surely did not arrive."""


def transport_failure(service: str, exc: BaseException) -> RetryableDelivery:
    """Not connected: surely not sent (retry). Connected, then no answer: it may have
    arrived (reconcile before resending). The message names the error's type and text,
    never the URL (a webhook URL is a secret)."""
    what = f"{service} connection error: {type(exc).__name__}: {exc}".rstrip(": ")
    if isinstance(exc, NOT_SENT):
        return RetryableDelivery(what)
    return UncertainDelivery(what)


TRANSPORT_ERRORS = (httpx.TransportError, OSError)
"""What a send can raise besides an answer (httpx wraps socket and TLS errors)."""
