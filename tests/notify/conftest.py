"""Fixtures for the notify stage (the servers, clock and database are in tests/conftest.py)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator

import pytest
import structlog
from pydantic import SecretStr

from sentinel.base.logging import configure
from sentinel.notify.settings import (
    ConsoleSettings,
    NotifySettings,
    PagerDutySettings,
    SlackSettings,
)
from sentinel.testing import PagerDutyServer, SlackServer


@pytest.fixture
def notify_settings(slack: SlackServer, pd: PagerDutyServer) -> NotifySettings:
    """Slack and PagerDuty enabled, pointed at the loopback servers; console off."""
    return NotifySettings(
        slack=SlackSettings(
            enabled=True,
            token=SecretStr(slack.token),
            channel="C0INCIDENTS",
            base_url=slack.base_url,
        ),
        pagerduty=PagerDutySettings(
            enabled=True,
            routing_key=SecretStr(pd.routing_key),
            base_url=pd.base_url,
            ca_file=pd.cert,
        ),
        console=ConsoleSettings(enabled=False),
    )


@pytest.fixture
def capture_output() -> Iterator[Callable[[str], io.StringIO]]:
    """``capture_output(fmt)`` routes sentinel's real log pipeline (``configure``) into a
    buffer, as the daemon writes it; the previous configuration is restored after."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def capture(fmt: str) -> io.StringIO:
        buf = io.StringIO()
        configure(level="debug", fmt=fmt, stream=buf)
        return buf

    yield capture
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
