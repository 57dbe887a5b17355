"""A playbook that fails validation at start-up is not silently dropped: /readyz fails,
``sentinel_playbooks_invalid`` counts the problems, and the status names them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from prometheus_client import CollectorRegistry

from sentinel.base.clock import FakeClock
from sentinel.pipeline import LatestFacts
from sentinel.runbook.engine import Engine
from sentinel.runbook.settings import RunbookSettings
from sentinel.vocabulary.samples import TritonHealth
from sentinel.wiring import ready

GOOD = """\
name: good
triggers: [{kinds: [latency_spike]}]
steps:
  - {name: note, action: notify.slack, with: {text: "{{ target.model }} is slow"}}
"""


def _engine(folder: Path, conn: sqlite3.Connection, registry: CollectorRegistry) -> Engine:
    return Engine(
        settings=RunbookSettings(dirs=[folder]),
        conn=conn,
        clock=FakeClock(),
        registry=registry,
    )


def _seen_triton() -> LatestFacts:
    facts = LatestFacts()
    facts.update(TritonHealth(ts=0.0, live=True, ready=True))
    return facts


def test_a_bad_playbook_fails_readiness_and_sets_the_metric(
    tmp_path: Path, conn: sqlite3.Connection
) -> None:
    """One good and one misspelt playbook: the good one loads, /readyz is false, metric is 1."""
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad.yaml").write_text(
        GOOD.replace("good", "bad").replace("target.model", "target.modle"), encoding="utf-8"
    )
    registry = CollectorRegistry()
    engine = _engine(tmp_path, conn, registry)
    assert (["good"], False) == (sorted(engine.playbooks), ready(_seen_triton(), engine))
    assert 1.0 == registry.get_sample_value("sentinel_playbooks_invalid")


def test_a_missing_playbook_folder_does_not_fail_readiness(
    tmp_path: Path, conn: sqlite3.Connection
) -> None:
    """The default folder absent (no playbooks configured) is logged, not an invalid file."""
    registry = CollectorRegistry()
    engine = _engine(tmp_path / "absent", conn, registry)
    assert (1, True) == (len(engine.problems), ready(_seen_triton(), engine))
    assert 0.0 == registry.get_sample_value("sentinel_playbooks_invalid")


def test_valid_playbooks_keep_readiness(tmp_path: Path, conn: sqlite3.Connection) -> None:
    """With every playbook valid and Triton seen, /readyz is true and the metric is 0."""
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    registry = CollectorRegistry()
    engine = _engine(tmp_path, conn, registry)
    assert ready(_seen_triton(), engine)
    assert 0.0 == registry.get_sample_value("sentinel_playbooks_invalid")
