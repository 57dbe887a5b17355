"""Logs: structlog, JSON lines on stdout (pretty on a terminal), ISO UTC times.

Libraries that log through stdlib ``logging`` (aiohttp, tritonclient)
go through the same renderer, so every line has the same shape and the same
bound context (model, incident) from contextvars. Secrets are redacted by key
name, by known value and by shape (bearer headers, Slack tokens), once before
and once after exceptions are rendered: a traceback is text made at render
time, so it is redacted as text too. Tracebacks never carry frame locals (a
client's locals hold its ``Authorization`` header).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

SECRET_KEY = re.compile(r"(token|secret|password|authorization|routing_key|api_key)", re.I)
SECRET_SHAPE = re.compile(
    r"(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"  # an Authorization header's credentials
    r"|\bxox[a-z]-[A-Za-z0-9-]+"  # Slack bot/user tokens
    r"|\bxapp-[A-Za-z0-9-]+"  # Slack app tokens
    r"|hooks\.slack\.com/services/[A-Za-z0-9/]+"  # a webhook URL is its own secret
)
REDACTED = "[redacted]"


class Redactor:
    """Replaces values under secret-looking keys, and any known secret value anywhere."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self._secrets.append(secret)

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        return {k: self._clean(k, v) for k, v in event_dict.items()}

    def _clean(self, key: str, value: Any) -> Any:
        if SECRET_KEY.search(key) and value is not None:
            return REDACTED
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, REDACTED)
            return SECRET_SHAPE.sub(REDACTED, value)
        if isinstance(value, MutableMapping):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean("", v) for v in value]
        return value


_DICT_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)
"""Structured tracebacks (file, line, function per frame) without each frame's locals."""

redactor = Redactor()
"""The process-wide redactor; the daemon registers configured secrets with it."""


def shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        redactor,
    ]


def colors_wanted() -> bool:
    """Console logs are colored unless ``NO_COLOR`` is set to anything but "" (no-color.org)."""
    return not os.environ.get("NO_COLOR")


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one renderer on ``stream`` (stdout)."""
    stream = stream or sys.stdout
    pretty = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(
            colors=colors_wanted(), exception_formatter=structlog.dev.plain_traceback
        )
        if pretty
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # render the exception here, without frame locals, so the redactor sees its text
            structlog.processors.format_exc_info if pretty else _DICT_TRACEBACKS,
            redactor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
