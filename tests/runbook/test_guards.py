"""The executor's guards: budget, breaker, cooldown, freshness, gates, lock, fleet."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from runbook_standins import Bed, drive, incident

from sentinel.runbook.schema import LoadedPlaybook
from sentinel.vocabulary.incidents import IncidentStatus
from sentinel.vocabulary.notices import PageRequest
from sentinel.vocabulary.samples import GpuProcess, GpuSample, TritonHealth

Loader = Callable[[str], LoadedPlaybook]

HALVE = """\
name: halve
triggers: [{kinds: [latency_spike]}]
guards: {cooldown: 0s, budget: {runs: 3, per: 24h}}
steps:
  - name: halve
    action: triton.load_model
    with: {model: digits, patch: {max_batch_size: "{{ [config.max_batch_size // 2, 1] | max }}"}}
"""


async def test_budget_stops_the_fourth_run_and_pages(bed: Bed, write_playbook: Loader) -> None:
    """Three runs in 24 h act; the fourth pages instead and changes nothing."""
    engine = bed.engine([write_playbook(HALVE)])
    statuses = []
    for _ in range(4):
        await bed.clock.advance(60)
        [r] = await engine.consider(incident("latency_spike", bed.clock.now()))
        statuses.append(r.status)
    assert ["succeeded"] * 3 + ["paged"] == statuses
    assert 32 // 2 // 2 // 2 == bed.triton.configs["digits"]["max_batch_size"]
    pages = bed.teller.of(PageRequest)
    assert 1 == len(pages)
    assert "budget" in pages[0].reason


async def test_budget_window_slides(bed: Bed, write_playbook: Loader) -> None:
    """After the window passes, the playbook may run again."""
    engine = bed.engine([write_playbook(HALVE)])
    for _ in range(3):
        await engine.consider(incident("latency_spike", bed.clock.now()))
    await bed.clock.advance(24 * 3600 + 1)
    [r] = await engine.consider(incident("latency_spike", bed.clock.now()))
    assert "succeeded" == r.status


async def test_breaker_stops_all_automation_until_reset(bed: Bed, write_playbook: Loader) -> None:
    """Too many actions open the breaker; every run is blocked until a person resets it."""
    engine = bed.engine([write_playbook(HALVE)], breaker_max_actions=2, budget_runs=10)
    first = [
        (await engine.consider(incident("latency_spike", bed.clock.now())))[0] for _ in range(3)
    ]
    assert ["succeeded", "succeeded", "blocked"] == [r.status for r in first]
    assert engine.history.breaker()["open"]
    await bed.clock.advance(7 * 24 * 3600)  # time alone does not close it
    [still] = await engine.consider(incident("latency_spike", bed.clock.now()))
    assert "blocked" == still.status
    assert "circuit breaker open" in still.reason
    engine.reset_breaker("alice")
    [after] = await engine.consider(incident("latency_spike", bed.clock.now()))
    assert "succeeded" == after.status
    assert "alice" == engine.history.breaker()["reset_by"]


async def test_cooldown_skips_without_paging(bed: Bed, write_playbook: Loader) -> None:
    """A second run within the cooldown is skipped and recorded, not paged."""
    lp = write_playbook(HALVE.replace("cooldown: 0s", "cooldown: 15m"))
    engine = bed.engine([lp])
    [a] = await engine.consider(incident("latency_spike", bed.clock.now()))
    await bed.clock.advance(60)
    [b] = await engine.consider(incident("latency_spike", bed.clock.now()))
    assert ("succeeded", "skipped") == (a.status, b.status)
    assert "cooldown" in b.reason
    assert [] == bed.teller.of(PageRequest)
    await bed.clock.advance(15 * 60)
    [c] = await engine.consider(incident("latency_spike", bed.clock.now()))
    assert "succeeded" == c.status


async def test_cleared_and_stale_findings_are_never_acted_on(
    bed: Bed, write_playbook: Loader
) -> None:
    """A resolved incident, or one older than max_event_age_s, is skipped."""
    engine = bed.engine([write_playbook(HALVE)], max_event_age_s=120)
    now = bed.clock.now()
    [resolved] = await engine.consider(
        incident("latency_spike", now, status=IncidentStatus.RESOLVED)
    )
    [stale] = await engine.consider(incident("latency_spike", now, age=121))
    assert ("skipped", "skipped") == (resolved.status, stale.status)
    assert "cleared" in resolved.reason
    assert "stale" in stale.reason
    assert [] == bed.triton.mutations()


async def test_foreign_gpu_memory_blocks_batch_reduction(bed: Bed, shipped: Loader) -> None:
    """reduce-batch-size is blocked, recorded and paged when another process holds memory."""
    bed.facts.gpu_samples = [
        GpuSample(
            ts=bed.clock.now(),
            index=0,
            uuid="GPU-1",
            processes=(
                GpuProcess(pid=10, used_bytes=2 << 30, name="tritonserver"),
                GpuProcess(pid=11, used_bytes=6 << 30, name="python3 train.py"),
            ),
        )
    ]
    engine = bed.engine([shipped("reduce-batch-size")])
    inc = incident("latency_spike", bed.clock.now(), age=40)
    [r] = await engine.consider(inc)
    assert "blocked" == r.status
    assert "another process holds GPU memory" in r.reason
    assert [] == bed.triton.mutations()
    [row] = engine.history.runs(1)
    assert 6 << 30 == row["evidence"]["gpu"]["foreign_memory_bytes"]
    [page] = bed.teller.of(PageRequest)
    assert inc.id == page.incident.id


async def test_hardware_thermal_never_sheds_load(bed: Bed, shipped: Loader) -> None:
    """thermal-throttle with HW thermal slowdown (0x40) blocks its action and pages."""
    bed.facts.gpu_samples = [
        GpuSample(ts=bed.clock.now(), index=0, uuid="GPU-1", clock_event_reasons=0x40)
    ]
    engine = bed.engine([shipped("thermal-throttle")])
    [r] = await engine.consider(incident("thermal_throttle", bed.clock.now()))
    assert "blocked" == r.status
    assert [] == bed.triton.mutations()
    assert 1 == len(bed.teller.of(PageRequest))
    statuses = {s["name"]: s["status"] for s in r.steps}
    assert {"diagnose": "succeeded", "shed_load": "blocked"} == statuses


async def test_young_server_is_not_restarted(bed: Bed, shipped: Loader) -> None:
    """restart-server refuses when the server is younger than 10 minutes."""
    bed.facts.health = TritonHealth(ts=bed.clock.now(), live=True, ready=False, uptime_s=120.0)
    engine = bed.engine([shipped("restart-server")])
    [r] = await engine.consider(incident("server_unhealthy", bed.clock.now(), age=61))
    assert "blocked" == r.status
    assert "younger than min_uptime_s (10 min" in r.reason


async def test_one_run_at_a_time_per_target(bed: Bed, write_playbook: Loader) -> None:
    """While one run acts on a model, another on the same model is skipped."""
    bed.triton.load_delay = 10.0
    lp = write_playbook(HALVE)
    engine = bed.engine([lp])
    first = asyncio.ensure_future(engine.run_manual("halve", {"model": "digits"}))
    await bed.clock.advance(1)
    second = await engine.run_manual("halve", {"model": "digits"})
    await bed.clock.advance(20)
    done = await first
    assert ("succeeded", "skipped") == (done.status, second.status)
    assert done.run_id in second.reason


async def test_fleet_guard_refusal_blocks_a_disruptive_step(
    bed: Bed, write_playbook: Loader
) -> None:
    """A restart the fleet guard refuses is not done; the run pages."""

    class Refuse:
        def __init__(self) -> None:
            self.asked: list[tuple[str, str]] = []

        async def acquire(self, action: str, target: str) -> bool:
            self.asked.append((action, target))
            return False

    lp = write_playbook(
        "name: r\nsteps:\n  - name: restart\n    action: process.signal\n"
        "    with: {signal: SIGTERM}\n    rollback: none\n"
    )
    engine = bed.engine([lp])
    guard = Refuse()
    engine.ports.fleet = guard
    result = await engine.run_manual("r", {"model": "digits"})
    assert [("process.signal", "pod-a/digits")] == guard.asked
    assert "blocked" == result.status
    assert 1 == len(bed.teller.of(PageRequest))


async def test_manual_run_needs_no_incident_but_obeys_budget(
    bed: Bed, write_playbook: Loader
) -> None:
    """Manual runs are recorded with their actor and count toward the budget."""
    engine = bed.engine([write_playbook(HALVE)])
    results = [await engine.run_manual("halve", {"model": "digits"}, actor="bob") for _ in range(4)]
    assert ["succeeded"] * 3 + ["paged"] == [r.status for r in results]
    assert {"bob"} == {r["actor"] for r in engine.history.runs(10)}


async def test_for_duration_waits_and_drops_cleared(bed: Bed, write_playbook: Loader) -> None:
    """A trigger's for: delays the run; an incident cleared meanwhile is not acted on."""
    from sentinel.vocabulary.notices import IncidentChanged

    lp = write_playbook(
        HALVE.replace("[{kinds: [latency_spike]}]", "[{kinds: [latency_spike], for: 60s}]")
    )
    engine = bed.engine([lp])
    inc = incident("latency_spike", bed.clock.now())
    await engine.handle(IncidentChanged(inc, "opened"))
    await bed.clock.advance(30)
    assert [] == bed.triton.mutations()
    await bed.clock.advance(31)
    await engine.idle()
    assert 1 == len(bed.triton.mutations())
    inc2 = incident("latency_spike", bed.clock.now(), model="other")
    bed.triton.configs["other"] = dict(bed.triton.configs["digits"])
    await engine.handle(IncidentChanged(inc2, "opened"))
    await bed.clock.advance(10)
    resolved = incident(
        "latency_spike", bed.clock.now(), model="other", status=IncidentStatus.RESOLVED
    )
    await engine.handle(IncidentChanged(resolved, "resolved"))
    await drive(bed.clock, engine.idle(), step=10)
    assert 1 == len(bed.triton.mutations())


async def test_guard_decisions_are_counted_in_metrics(bed: Bed, write_playbook: Loader) -> None:
    """Runs by outcome, budget exhaustion and the breaker show up on the injected registry."""
    registry = CollectorRegistry()
    engine = bed.engine([write_playbook(HALVE)], registry=registry, breaker_max_actions=3)
    for _ in range(4):
        await engine.consider(incident("latency_spike", bed.clock.now()))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert 3 == value("sentinel_playbook_runs_total", playbook="halve", outcome="succeeded")
    assert 1 == value("sentinel_playbook_runs_total", playbook="halve", outcome="paged")
    assert 1 == value("sentinel_playbook_guard_blocks_total", playbook="halve", guard="budget")
    assert 1 == value("sentinel_playbook_budget_exhausted", playbook="halve")
    assert 3 == value(
        "sentinel_playbook_actions_total", action="triton.load_model", outcome="succeeded"
    )
    bed.triton.configs["other"] = dict(bed.triton.configs["digits"])
    blocked = await engine.run_manual("halve", {"model": "other"})  # a fresh budget
    assert "blocked" == blocked.status
    assert 1 == value("sentinel_breaker_open")
    engine.reset_breaker("ops")
    assert 0 == value("sentinel_breaker_open")


async def test_incident_skipped_for_a_locked_target_runs_once_the_lock_frees(
    bed: Bed, write_playbook: Loader
) -> None:
    """A drift that arrives while a latency run holds the model gets its own run afterwards."""
    from sentinel.vocabulary.notices import IncidentChanged

    slow = write_playbook(
        "name: slow\ntriggers: [{kinds: [latency_spike]}]\nsteps:\n"
        "  - name: pause\n    action: wait\n    with: {seconds: 30}\n"
    )
    fix = write_playbook(
        "name: fix\ntriggers: [{kinds: [accuracy_drift]}]\nsteps:\n"
        "  - name: fp16\n    action: triton.load_model\n"
        "    with: {model: digits, patch: {precision: fp16}}\n"
    )
    engine = bed.engine([slow, fix])
    await engine.handle(IncidentChanged(incident("latency_spike", bed.clock.now()), "opened"))
    await bed.clock.advance(1)
    await engine.handle(IncidentChanged(incident("accuracy_drift", bed.clock.now()), "opened"))
    await bed.clock.advance(5)
    assert [] == bed.triton.mutations(), "the drift waits while the latency run acts"
    await drive(bed.clock, engine.idle())
    runs = sorted((r["playbook"], r["status"]) for r in engine.history.runs(10))
    assert [("fix", "skipped"), ("fix", "succeeded"), ("slow", "succeeded")] == runs
    assert 1 == len(bed.triton.mutations())
