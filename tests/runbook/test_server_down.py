"""Calls to a server the health probe just found dead are skipped, not waited out."""

from __future__ import annotations

from sentinel.pipeline import LatestFacts
from sentinel.runbook.executor import server_known_down
from sentinel.vocabulary.samples import TritonHealth


def facts_with(health: TritonHealth | None) -> LatestFacts:
    facts = LatestFacts()
    if health is not None:
        facts.update(health)
    return facts


def test_dead_server_is_known_down() -> None:
    """A health sample that is not live marks the server down."""
    dead = TritonHealth(ts=1.0, live=False, ready=False, error="Deadline Exceeded")
    assert server_known_down(facts_with(dead))


def test_live_or_unknown_server_is_not_known_down() -> None:
    """A live server, or no health sample yet, is worth calling."""
    live = TritonHealth(ts=1.0, live=True, ready=True)
    assert (False, False, False) == (
        server_known_down(facts_with(live)),
        server_known_down(facts_with(None)),
        server_known_down(None),
    )
