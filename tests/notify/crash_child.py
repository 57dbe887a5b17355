"""A sentinel-like child process for the crash test: one dispatcher pass, then exit.

Usage: python crash_child.py DB SLACK_BASE_URL TOKEN CHANNEL
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import SecretStr

import sentinel.base.audit
import sentinel.incidents.silences
import sentinel.incidents.store  # noqa: F401 -- registers the tables
from sentinel.base.clock import SystemClock
from sentinel.base.db import open_db
from sentinel.notify.settings import ConsoleSettings, NotifySettings, SlackSettings
from sentinel.notify.teller import build_notify


async def main(db: str, base_url: str, token: str, channel: str) -> None:
    settings = NotifySettings(
        slack=SlackSettings(
            enabled=True, token=SecretStr(token), channel=channel, base_url=base_url
        ),
        console=ConsoleSettings(enabled=False),
    )
    stack = build_notify(open_db(db), settings, "pod-a", SystemClock())
    await stack.dispatcher.deliver_due()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
