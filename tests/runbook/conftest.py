"""Fixtures of the runbook tests: an engine on a fake clock, over stand-ins."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from runbook_standins import (
    FixedFacts,
    RecordingMarker,
    RecordingTeller,
    StandInCanary,
    StandInTriton,
)

from sentinel.base.clock import FakeClock
from sentinel.base.db import open_db
from sentinel.runbook.engine import Engine
from sentinel.runbook.schema import LoadedPlaybook, load_playbook
from sentinel.runbook.settings import RunbookSettings

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"


class Bed:
    """One engine and the stand-ins around it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.clock = FakeClock()
        self.triton = StandInTriton()
        self.triton.clock = self.clock
        self.canary = StandInCanary(self.triton, self.clock)
        self.teller = RecordingTeller()
        self.facts = FixedFacts()
        self.marker = RecordingMarker()

    def engine(
        self,
        playbooks: list[LoadedPlaybook],
        dry_run: bool = False,
        registry: CollectorRegistry | None = None,
        **settings: Any,
    ) -> Engine:
        defaults: dict[str, Any] = {"dirs": [], "canary_interval_s": 5.0}
        return Engine(
            settings=RunbookSettings(**{**defaults, **settings}),
            conn=self.conn,
            clock=self.clock,
            playbooks={lp.playbook.name: lp for lp in playbooks},
            triton=self.triton,
            canary=self.canary,
            facts=self.facts,
            teller=self.teller,
            incidents=self.marker,
            pod="pod-a",
            dry_run=dry_run,
            registry=registry,
        )


@pytest.fixture
def bed() -> Iterator[Bed]:
    conn = open_db(":memory:")
    try:
        yield Bed(conn)
    finally:
        conn.close()


@pytest.fixture
def shipped() -> Callable[[str], LoadedPlaybook]:
    """A shipped playbook by name."""
    return lambda name: load_playbook(PLAYBOOKS / f"{name}.yaml")


@pytest.fixture
def write_playbook(tmp_path: Path) -> Callable[[str], LoadedPlaybook]:
    """Write YAML text to a file and load it as a playbook."""
    counter = iter(range(1000))

    def write(text: str) -> LoadedPlaybook:
        path = tmp_path / f"pb{next(counter)}.yaml"
        path.write_text(text, encoding="utf-8")
        return load_playbook(path)

    return write
