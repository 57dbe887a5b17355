"""Fixtures for the incidents stage: a real SQLite file and a fake clock."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import sentinel.base.audit
import sentinel.incidents.silences
import sentinel.incidents.store  # noqa: F401 -- registers the tables
from sentinel.base.clock import FakeClock
from sentinel.base.db import open_db


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = open_db(tmp_path / "sentinel.db")
    yield c
    c.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
