"""No secret reaches the logs, tracebacks included; a garbled Slack answer is a retry."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable

import pytest
import structlog

from sentinel.base.clock import FakeClock
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.notify.settings import NotifySettings
from sentinel.notify.teller import build_notify
from sentinel.testing import Failure, PagerDutyServer, SlackServer, drain, finding

Capture = Callable[[str], io.StringIO]
UNSHAPED_SECRET = "s3cr3t-value-with-no-known-shape"


def _fail_with_secret_in_a_local() -> None:
    headers = {"X-Api": UNSHAPED_SECRET}  # a client's locals, as slack_sdk's frames hold
    raise RuntimeError(f"request failed, header count {len(headers)}")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_traceback_never_renders_frame_locals(capture_output: Capture, fmt: str) -> None:
    """An exception logged with its traceback shows frames but not their local variables."""
    out = capture_output(fmt)
    try:
        _fail_with_secret_in_a_local()
    except RuntimeError:
        structlog.get_logger("t").exception("delivery_crashed")
    text = out.getvalue()
    assert "_fail_with_secret_in_a_local" in text  # the traceback is there
    assert UNSHAPED_SECRET not in text


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_secret_in_a_rendered_exception_is_redacted(capture_output: Capture, fmt: str) -> None:
    """A bearer credential inside an exception's message is redacted after rendering."""
    out = capture_output(fmt)
    try:
        raise ValueError("refused: Authorization: Bearer xoxb-1111-2222-abcdefabcdef")
    except ValueError:
        structlog.get_logger("t").exception("delivery_crashed")
    text = out.getvalue()
    assert "refused: Authorization" in text
    assert "xoxb-1111" not in text
    assert "[redacted]" in text


@pytest.mark.parametrize(
    "garbage",
    [
        Failure(200, body="<html><body>Bad gateway</body></html>", content_type="text/html"),
        Failure(200, body="upstream said something", content_type="text/plain"),
        Failure(200, body="{not json", content_type="application/json"),
    ],
    ids=["html", "plain-text", "broken-json"],
)
async def test_slack_non_json_answer_is_retried_and_never_logs_the_token(
    conn: sqlite3.Connection,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
    capture_output: Capture,
    garbage: Failure,
) -> None:
    """A 200 without a JSON body is a retried delivery error, and the bot token stays out."""
    out = capture_output("json")
    stack = build_notify(conn, notify_settings, "pod-a", clock)
    manager = IncidentManager(conn, IncidentSettings(), "pod-a", clock)
    [opened] = manager.ingest(finding("resnet", clock.now()))
    await stack.teller.tell(opened)
    slack.script = [garbage]
    await stack.dispatcher.deliver_due()
    [row] = [r for r in stack.outbox.rows() if r.notifier == "slack"]
    assert ("sending", 1) == (row.state, row.attempts)  # retried, reconciled first
    assert "JSON" in (row.last_error or "")
    await drain(stack.dispatcher, clock)
    await stack.dispatcher.stop()
    assert [f"slack/{opened.incident.id}/root"] == slack.idem_keys()  # delivered once
    assert {"sent"} == {r.state for r in stack.outbox.rows()}
    text = out.getvalue()
    assert '"notify_retry"' in text
    assert slack.token not in text
    assert "xoxb-" not in text
