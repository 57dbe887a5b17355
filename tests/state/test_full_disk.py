"""A full disk: no incident is kept without its notices, sentinel says it cannot write
(readiness, metric, log), and the page goes out once space comes back."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import aiohttp
from prometheus_client import CollectorRegistry
from state_bed import build_flow
from structlog.testing import capture_logs

from sentinel.api import build_app, start_api
from sentinel.base import db
from sentinel.base.clock import FakeClock
from sentinel.testing import PagerDutyServer, drain, finding
from sentinel.vocabulary.findings import Finding


def big_finding(at: float) -> Finding:
    """A finding whose evidence spans several pages, in the incident row and in the page."""
    f = finding("resnet", at)
    return dataclasses.replace(f, evidence={**f.evidence, "trace": "t" * 12_000})


async def test_no_incident_is_kept_without_its_page_however_little_space_is_left(
    tmp_path: Path, clock: FakeClock, pd: PagerDutyServer
) -> None:
    """Whatever room is left on disk, an incident is stored with its outbox rows or not at all."""
    seen: list[tuple[int, int]] = []
    for extra_pages in range(40):
        flow = build_flow(tmp_path / f"room-{extra_pages}.db", clock, pd)
        try:
            flow.cap(extra_pages)
            await flow.pipeline.ingest_judgement(big_finding(clock.now()))
            incidents, rows = flow.counts()
        finally:
            flow.conn.close()
        seen.append((incidents, rows))
        assert incidents == 0 or rows > 0, f"incident without its page at +{extra_pages} pages"
        if incidents:
            break
    assert (0, 0) == seen[0]  # no room at all: nothing stored
    assert 1 == seen[-1][0]  # enough room: stored, with its page


async def test_full_disk_is_loud_and_the_page_goes_out_when_space_comes_back(
    tmp_path: Path, clock: FakeClock, pd: PagerDutyServer
) -> None:
    """Not ready, metric 0 and an error naming the file while full; then stored and paged."""
    path = tmp_path / "state" / "sentinel.db"
    flow = build_flow(path, clock, pd)
    registry = CollectorRegistry()
    db.register_metrics(flow.conn, registry)
    labels = {"path": str(path)}
    app = build_app(conn=flow.conn, token=None, clock=clock)
    runner, port = await start_api(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            readyz = f"http://127.0.0.1:{port}/readyz"
            flow.cap(0)
            with capture_logs() as logs:
                await flow.pipeline.ingest_judgement(big_finding(clock.now()))
            assert (0, 0) == flow.counts()
            failed = [e for e in logs if e["event"] == "state_write_failed"]
            assert [str(path)] == [e["path"] for e in failed]
            assert "full" in failed[0]["error"]
            async with http.get(readyz) as resp:
                body = await resp.json()
                assert 503 == resp.status
            assert {"ready": False} == {"ready": body["ready"]}
            assert body["state"]["writable"] is False
            assert 0.0 == registry.get_sample_value("sentinel_state_writable", labels)
            errors = registry.get_sample_value("sentinel_state_write_errors_total", labels)
            assert (errors or 0) >= 1

            clock.set(clock.monotonic() + 5)
            await flow.pipeline.tick(clock.now())  # still full: kept for the next try
            assert (0, 0) == flow.counts()
            assert 1 == len(flow.pipeline.pending)

            flow.uncap()
            clock.set(clock.monotonic() + 5)
            await flow.pipeline.tick(clock.now())
            incidents, rows = flow.counts()
            assert (1, True) == (incidents, rows > 0)
            assert 1.0 == registry.get_sample_value("sentinel_state_writable", labels)
            async with http.get(readyz) as resp:
                assert 200 == resp.status
            await drain(flow.notify.dispatcher, clock)
            assert ["trigger"] == [action for action, _ in pd.actions()]
    finally:
        await flow.notify.dispatcher.stop()
        await runner.cleanup()
        flow.conn.close()


def test_readiness_comes_back_with_space_even_with_nothing_to_retry(
    tmp_path: Path, clock: FakeClock, pd: PagerDutyServer
) -> None:
    """A failed write with nothing pending: the tick's recheck finds the space again."""
    flow = build_flow(tmp_path / "sentinel.db", clock, pd)
    try:
        flow.cap(0)
        with flow.conn:  # a stand-in for any write that needs a new page
            flow.conn.execute("CREATE TABLE filler (x TEXT)")
            flow.conn.execute("INSERT INTO filler VALUES (?)", ("f" * 20_000,))
    except sqlite3.OperationalError:
        pass
    try:
        health = db.health_of(flow.conn)
        assert (False, False) == (health.writable, db.recheck(flow.conn))
        flow.uncap()
        assert (True, True) == (db.recheck(flow.conn), health.writable)
    finally:
        flow.conn.close()
