"""Fixtures for the notify stage (the servers, clock and database are in tests/conftest.py)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

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
