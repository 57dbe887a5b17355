"""Fixtures of the runbook tests: an engine on a fake clock, over stand-ins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runbook_standins import Bed

from sentinel.base.db import open_db
from sentinel.runbook.schema import LoadedPlaybook, load_playbook

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"


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
