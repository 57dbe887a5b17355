"""Exactly-once under random failures and random restarts (seeded, reproducible)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from sentinel.base.clock import FakeClock
from sentinel.base.db import open_db
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.notify.settings import NotifySettings
from sentinel.notify.teller import build_notify
from sentinel.testing import Failure, PagerDutyServer, SlackServer, cleared, finding
from sentinel.vocabulary.notices import ActionUpdate, Notice

POD = "pod-a"


def _script(rng: random.Random, n: int) -> list[Failure]:
    choices = [Failure(429, retry_after=rng.choice([1, 5, 30])), Failure(500), Failure(503)]
    return [rng.choice(choices) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
async def test_random_failures_and_restarts_deliver_each_notice_once(
    seed: int,
    db_path: Path,
    clock: FakeClock,
    slack: SlackServer,
    pd: PagerDutyServer,
    notify_settings: NotifySettings,
) -> None:
    """Whatever the mix of 429/5xx and restarts, every queued message arrives exactly once."""
    rng = random.Random(seed)
    slack.script = _script(rng, 12)
    pd.script = _script(rng, 8)
    conn = open_db(db_path)
    manager = IncidentManager(conn, IncidentSettings(resolve_hold_s=0), POD, clock)
    stack = build_notify(conn, notify_settings, POD, clock)
    notices: list[Notice] = []
    for model in ("resnet", "bert", "yolo", "vit"):
        notices += manager.ingest(finding(model, clock.now()))
    for i, change in enumerate(notices[:2]):
        run = f"run-{i}"
        notices += manager.mark_mitigating(change.incident.id, "int8-to-fp16", run)
        notices.append(
            ActionUpdate(change.incident, "int8-to-fp16", run, "reload", "failed", "no luck")
        )
        notices += manager.ingest(cleared(change.incident.subject.model or "", clock.now() + 1))
    for n in notices:
        await stack.teller.tell(n)
    restarts = 0
    for _ in range(400):
        nxt = await stack.dispatcher.deliver_due()
        if nxt is None:
            break
        if rng.random() < 0.25:  # restart: new connection, new clients, new dispatcher
            await stack.dispatcher.stop()
            conn.close()
            conn = open_db(db_path)
            stack = build_notify(conn, notify_settings, POD, clock)
            restarts += 1
        clock.set(clock.monotonic() + max(nxt - clock.now(), 0.0))
    await stack.dispatcher.stop()
    rows = stack.outbox.rows()
    conn.close()
    assert {"sent"} == {r.state for r in rows}
    assert restarts > 0
    expected_slack = sorted(r.idem_key for r in rows if r.notifier == "slack" and r.op != "update")
    assert expected_slack == sorted(slack.idem_keys())
    pd_rows = [r for r in rows if r.notifier == "pagerduty" and r.op != "change"]
    expected_pd = Counter((r.op, r.payload["dedup_key"]) for r in pd_rows)
    assert expected_pd == Counter(pd.actions())
    for key in {k for _, k in pd.actions()}:  # per incident, in the order they were told
        assert [r.op for r in pd_rows if r.payload["dedup_key"] == key] == [
            a for a, k in pd.actions() if k == key
        ]
    assert 2 == len(pd.changes)
