"""Pieces of the wiring between stages."""

from __future__ import annotations

from sentinel.base.clock import FakeClock
from sentinel.config import Config
from sentinel.runbook.fleet import FleetHalt
from sentinel.testing import RecordingTeller
from sentinel.vocabulary.notices import PageRequest
from sentinel.wiring import _page_fleet_halt


async def test_fleet_halt_pages_once_with_the_degraded_replicas() -> None:
    """A fleet-wide stop becomes one page naming how many replicas degraded together."""
    teller = RecordingTeller()
    on_halt = _page_fleet_halt(Config(pod="triton-0"), FakeClock(), teller)
    await on_halt(FleetHalt("budget", ["triton-0", "triton-1", "triton-2"], 4, 10.0))
    [page] = teller.notices
    assert isinstance(page, PageRequest)
    assert ("fleet_halt", "trigger", ["triton-0", "triton-1", "triton-2"]) == (
        page.incident.kind,
        page.action,
        page.evidence["degraded"],
    )
    assert page.reason.startswith("3 of 4 replicas degraded together")
