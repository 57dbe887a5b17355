"""Degradation as a lease: restore after sustained health, re-apply with backoff."""

from __future__ import annotations

from collections.abc import Callable

from runbook_standins import Bed, drive, incident

from sentinel.runbook.schema import LoadedPlaybook
from sentinel.vocabulary.incidents import IncidentStatus
from sentinel.vocabulary.notices import IncidentChanged

Loader = Callable[[str], LoadedPlaybook]
HALF_HOUR = 30 * 60


async def _reduce(bed: Bed, shipped: Loader) -> tuple[object, int]:
    engine = bed.engine([shipped("reduce-batch-size")], lease_check_interval_s=60)
    bed.triton.configs["digits"]["parameters"]["precision"]["string_value"] = "fp32"
    original = bed.triton.configs["digits"]["max_batch_size"]
    inc = incident("latency_spike", bed.clock.now(), age=40)
    await engine.handle(IncidentChanged(inc, "opened"))
    await drive(bed.clock, engine.idle())
    resolved = incident("latency_spike", bed.clock.now(), status=IncidentStatus.RESOLVED)
    await engine.handle(IncidentChanged(resolved, "resolved"))
    return engine, original


async def test_lease_restores_after_the_healthy_period(bed: Bed, shipped: Loader) -> None:
    """The smaller batch is undone after 30 min healthy, verified, then the lease closes."""
    engine, original = await _reduce(bed, shipped)
    assert original // 2 == bed.triton.configs["digits"]["max_batch_size"]
    await bed.clock.advance(HALF_HOUR - 120)
    assert [] == await engine.leases.tick()
    assert original // 2 == bed.triton.configs["digits"]["max_batch_size"]
    await bed.clock.advance(120)
    events = await drive(bed.clock, engine.leases.tick())
    assert ["restored"] == [e["event"] for e in events]
    assert original == bed.triton.configs["digits"]["max_batch_size"]
    await bed.clock.advance(HALF_HOUR)
    assert ["closed"] == [e["event"] for e in await engine.leases.tick()]
    assert [] == engine.history.leases()


async def test_fault_returning_after_restore_reapplies_with_backoff(
    bed: Bed, shipped: Loader
) -> None:
    """A fault while the restore is watched puts the fallback back and doubles the wait."""
    engine, original = await _reduce(bed, shipped)
    await bed.clock.advance(HALF_HOUR)
    await drive(bed.clock, engine.leases.tick())
    assert original == bed.triton.configs["digits"]["max_batch_size"]
    again = incident("latency_spike", bed.clock.now())
    await engine.handle(IncidentChanged(again, "opened"))
    await engine.stop()  # the new incident's own playbook run is not under test here
    [lease] = engine.history.leases()
    assert (original // 2, 2 * HALF_HOUR, 1) == (
        bed.triton.configs["digits"]["max_batch_size"],
        lease["restore_after"],
        lease["reapplied"],
    )


async def test_restore_that_fails_verification_reapplies(bed: Bed, shipped: Loader) -> None:
    """If the original config fails its canary check, the fallback goes back on."""
    engine, original = await _reduce(bed, shipped)
    bed.canary.agreement = lambda c: 0.5 if c["max_batch_size"] == original else 1.0
    await bed.clock.advance(HALF_HOUR)
    events = await drive(bed.clock, engine.leases.tick())
    assert ["verify_failed"] == [e["event"] for e in events]
    assert original // 2 == bed.triton.configs["digits"]["max_batch_size"]
    [lease] = engine.history.leases()
    assert 2 * HALF_HOUR == lease["restore_after"]


async def test_keeper_runs_on_the_clock(bed: Bed, shipped: Loader) -> None:
    """start() checks leases every lease_check_interval_s; stop() ends the task."""
    engine, original = await _reduce(bed, shipped)
    await engine.start()
    try:
        await drive(
            bed.clock,
            _until(lambda: bed.triton.configs["digits"]["max_batch_size"] == original, bed),
            step=30,
        )
    finally:
        await engine.stop()
    assert original == bed.triton.configs["digits"]["max_batch_size"]


async def _until(predicate: Callable[[], bool], bed: Bed) -> None:
    while not predicate():
        await bed.clock.sleep(1)


async def test_global_dry_run_keeps_leases_from_acting(bed: Bed, shipped: Loader) -> None:
    """A daemon restarted in dry-run mode does not restore a lease."""
    _, original = await _reduce(bed, shipped)
    dry = bed.engine([shipped("reduce-batch-size")], dry_run=True)
    await bed.clock.advance(HALF_HOUR)
    events = await dry.leases.tick()
    assert ["dry_run"] == [e["event"] for e in events]
    assert original // 2 == bed.triton.configs["digits"]["max_batch_size"]
    assert 1 == len(bed.triton.mutations())  # only the original halving
