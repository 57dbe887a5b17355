"""The state tests' bed: a real sentinel flow (incidents -> outbox -> PagerDuty loopback)
on a real SQLite file whose size the test caps with ``PRAGMA max_page_count``."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from sentinel.base import db
from sentinel.base.clock import FakeClock
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.notify.settings import ConsoleSettings, NotifySettings, PagerDutySettings
from sentinel.notify.teller import NotifyStack, build_notify
from sentinel.pipeline import LatestFacts, Pipeline
from sentinel.testing import PagerDutyServer
from sentinel.vocabulary.findings import Judgement
from sentinel.vocabulary.samples import Sample

POD = "pod-a"


class JudgeStandIn:
    """STAND-IN for the detector suite: judges nothing (the test hands in judgements)."""

    def observe(self, sample: Sample) -> list[Judgement]:
        return []

    def tick(self, now: float) -> list[Judgement]:
        return []


@dataclass
class Flow:
    conn: sqlite3.Connection
    pipeline: Pipeline
    notify: NotifyStack

    def cap(self, extra_pages: int) -> None:
        """The file may grow by ``extra_pages`` pages from now on (a nearly full disk)."""
        pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])
        self.conn.execute(f"PRAGMA max_page_count = {pages + extra_pages}")

    def uncap(self) -> None:
        """Space came back."""
        self.conn.execute("PRAGMA max_page_count = 1073741823")

    def counts(self) -> tuple[int, int]:
        """(incidents, outbox rows)."""
        incidents = self.conn.execute("SELECT count(*) FROM incidents").fetchone()[0]
        rows = self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return int(incidents), int(rows)


def build_flow(path: Path, clock: FakeClock, pd: PagerDutyServer) -> Flow:
    """Incidents, the outbox and PagerDuty, wired as ``sentinel.wiring`` wires them."""
    conn = db.open_db(path)
    settings = NotifySettings(
        pagerduty=PagerDutySettings(
            enabled=True,
            routing_key=SecretStr(pd.routing_key),
            base_url=pd.base_url,
            ca_file=pd.cert,
        ),
        console=ConsoleSettings(enabled=False),
    )
    stack = build_notify(conn, settings, POD, clock)
    manager = IncidentManager(conn, IncidentSettings(renotify_interval_s=0), POD, clock)
    pipeline = Pipeline(
        facts=LatestFacts(),
        judge=JudgeStandIn(),
        memory=manager,
        teller=stack.teller,
        unit_of_work=lambda: db.unit_of_work(conn),
        retry_on=db.is_write_failure,
    )
    return Flow(conn, pipeline, stack)
