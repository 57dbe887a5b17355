"""The audit trail is bounded: fields cut to a fixed size, refused requests rate-limited
(the dropped ones counted and summed up in one row), old rows pruned by age and count."""

from __future__ import annotations

import sqlite3

import aiohttp
from prometheus_client import CollectorRegistry

from sentinel.api import build_app, start_api
from sentinel.base import audit as audit_trail
from sentinel.base.audit import RATE_LIMITED_ACTION, audit, entries
from sentinel.base.clock import FakeClock
from sentinel.base.db import AuditSettings

TOKEN = "t0ken-for-the-audit-tests"


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM audit").fetchone()[0])


def test_attacker_sized_fields_are_cut_to_a_fixed_size(conn: sqlite3.Connection) -> None:
    """Megabyte actor, target and path are stored cut to the configured size."""
    settings = AuditSettings(max_field_chars=100, max_details_chars=1000)
    audit_trail.configure(conn, settings)
    huge = "A" * 1_000_000
    audit(conn, huge, "silence.add", huge, "ok", {"path": huge, "nested": {"x": [huge]}})
    [row] = conn.execute("SELECT * FROM audit").fetchall()
    for column in ("actor", "target", "details"):
        assert len(row[column]) < 1100, column
    [entry] = entries(conn)
    assert entry["actor"].startswith("A" * 100)
    assert entry["actor"].endswith(f"[{1_000_000 - 100} more chars]")


async def test_refused_requests_are_rate_limited_and_the_rest_counted(
    conn: sqlite3.Connection, clock: FakeClock
) -> None:
    """Past the burst, refused requests are not rows: counted, then summed up in one row."""
    registry = CollectorRegistry()
    audit_trail.configure(conn, AuditSettings(refused_burst=20, refused_per_minute=60), registry)
    app = build_app(conn=conn, token=TOKEN, clock=clock)
    runner, port = await start_api(app, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/v1/playbooks/{'p' * 4000}/run"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(120):
                async with http.post(url, headers={"Authorization": "Bearer wrong"}) as resp:
                    assert 403 == resp.status
            assert 20 == count(conn)
            assert 100.0 == registry.get_sample_value("sentinel_audit_rows_dropped_total")
            clock.set(clock.monotonic() + 1.0)  # one more token
            async with http.post(url) as resp:
                assert 401 == resp.status
    finally:
        await runner.cleanup()
    newest, summary = entries(conn, limit=2)
    assert (RATE_LIMITED_ACTION, {"dropped": 100}) == (summary["action"], summary["details"])
    assert newest["outcome"].startswith("refused 401")
    assert len(newest["details"]["path"]) < 1100  # the 4000-char path, cut


def test_acting_rows_are_not_rate_limited(conn: sqlite3.Connection) -> None:
    """Rows of what sentinel and authenticated people did are all kept."""
    audit_trail.configure(conn, AuditSettings(refused_burst=5))
    for i in range(50):
        audit(conn, "alice", "silence.add", f"s{i}", "ok", at=1000.0)
    assert 50 == count(conn)


def test_rows_are_pruned_by_count(conn: sqlite3.Connection) -> None:
    """Never more than max_rows: the oldest go first."""
    audit_trail.configure(conn, AuditSettings(max_rows=100))
    for i in range(250):
        audit(conn, "sentinel", "incident.opened", f"k{i}", "recorded", at=1000.0 + i)
    assert 100 == count(conn)
    assert "k249" == entries(conn, limit=1)[0]["target"]
    assert "k150" == entries(conn, limit=100)[-1]["target"]


def test_rows_are_pruned_by_age(conn: sqlite3.Connection) -> None:
    """Rows older than max_age_days go as new ones arrive."""
    audit_trail.configure(conn, AuditSettings(max_age_days=1, max_rows=100))
    for i in range(10):
        audit(conn, "sentinel", "incident.opened", f"old{i}", "recorded", at=1000.0 + i)
    audit(conn, "sentinel", "incident.opened", "new", "recorded", at=1000.0 + 2 * 86400)
    assert ["new"] == [e["target"] for e in entries(conn)]
