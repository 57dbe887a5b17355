"""Operator pauses in the executor: what a pause refuses, what it lets through, its page,
its metric, and the pod's opt-out (config flag, downward-API annotation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry
from runbook_standins import Bed, drive, incident

from sentinel.runbook.pauses import Pause, PauseStore
from sentinel.runbook.schema import LoadedPlaybook
from sentinel.runbook.status import Guard
from sentinel.vocabulary.incidents import IncidentStatus
from sentinel.vocabulary.notices import IncidentChanged, PageRequest

Loader = Callable[[str], LoadedPlaybook]


def _pause(
    bed: Bed, model: str | None = None, playbook: str | None = None, s: float = 7200.0
) -> Pause:
    return PauseStore(bed.conn).add(
        model=model,
        playbook=playbook,
        duration_s=s,
        reason="engine rebuild",
        created_by="alice",
        now=bed.clock.now(),
    )


async def test_paused_model_refuses_the_automatic_run_and_records_it(
    bed: Bed, shipped: Loader
) -> None:
    """A pause on the model stops the run before any step; the refusal is a run row."""
    engine = bed.engine([shipped("int8-to-fp16")])
    pause = _pause(bed, model="digits")
    [result] = await drive(bed.clock, engine.consider(incident("accuracy_drift", bed.clock.now())))
    assert ("skipped", Guard.PAUSED) == (result.status, result.refused_by)
    assert [] == bed.triton.mutations()
    assert [] == bed.marker.marked
    [row] = engine.history.runs(5)
    assert ("skipped", []) == (row["status"], row["steps"])
    assert pause.id in row["reason"]
    assert "engine rebuild" in row["reason"]


async def test_a_pause_pages_once_per_incident_not_at_each_retry(bed: Bed, shipped: Loader) -> None:
    """The first refused run pages saying paused; the same incident again is only recorded."""
    engine = bed.engine([shipped("int8-to-fp16")])
    _pause(bed)
    inc = incident("accuracy_drift", bed.clock.now())
    await drive(bed.clock, engine.consider(inc))
    await drive(bed.clock, engine.consider(inc))
    [page] = bed.teller.of(PageRequest)
    assert page.reason.startswith("automation paused (all) by alice")
    assert 2 == len(engine.history.runs(5))


async def test_pause_on_another_model_or_playbook_lets_the_run_act(
    bed: Bed, shipped: Loader
) -> None:
    """Pauses are scoped: another model's or another playbook's pause does not stop it."""
    engine = bed.engine([shipped("int8-to-fp16")])
    _pause(bed, model="resnet")
    _pause(bed, playbook="restart-server")
    [result] = await drive(bed.clock, engine.consider(incident("accuracy_drift", bed.clock.now())))
    assert "succeeded" == result.status


async def test_pause_on_model_and_playbook_needs_both_to_match(bed: Bed, shipped: Loader) -> None:
    """--model and --playbook together pause only that playbook on that model."""
    engine = bed.engine([shipped("int8-to-fp16")])
    _pause(bed, model="digits", playbook="int8-to-fp16")
    [result] = await drive(bed.clock, engine.consider(incident("accuracy_drift", bed.clock.now())))
    assert Guard.PAUSED == result.refused_by


async def test_a_persons_manual_run_goes_ahead_while_paused(bed: Bed, shipped: Loader) -> None:
    """Pausing stops what sentinel does on its own, not what an operator asks for."""
    engine = bed.engine([shipped("int8-to-fp16")])
    _pause(bed)
    result = await drive(bed.clock, engine.run_manual("int8-to-fp16", {"model": "digits"}))
    assert ("succeeded", None) == (result.status, result.refused_by)


async def test_resumed_or_expired_pause_no_longer_refuses(bed: Bed, shipped: Loader) -> None:
    """After `resume` (or the end of --for) automation acts again."""
    engine = bed.engine([shipped("int8-to-fp16")])
    pause = _pause(bed, s=60.0)
    PauseStore(bed.conn).resume(pause.id, "bob", bed.clock.now())
    [result] = await drive(bed.clock, engine.consider(incident("accuracy_drift", bed.clock.now())))
    assert "succeeded" == result.status
    _pause(bed, s=60.0)
    await bed.clock.advance(61.0)
    bed.clock.set(bed.clock.monotonic() + 3600)  # past the playbook's cooldown
    [again] = await drive(bed.clock, engine.consider(incident("accuracy_drift", bed.clock.now())))
    assert Guard.PAUSED != again.refused_by


async def test_metric_shows_each_active_pause_by_scope(bed: Bed, shipped: Loader) -> None:
    """sentinel_automation_paused is 1 per active scope, and gone once resumed."""
    registry = CollectorRegistry()
    bed.engine([shipped("int8-to-fp16")], registry=registry)
    pause = _pause(bed, model="digits", playbook="int8-to-fp16")
    labels = {"scope": "model=digits,playbook=int8-to-fp16"}
    assert 1.0 == registry.get_sample_value("sentinel_automation_paused", labels)
    PauseStore(bed.conn).resume(pause.id, "bob", bed.clock.now())
    assert registry.get_sample_value("sentinel_automation_paused", labels) is None


async def test_config_flag_opts_the_pod_out(bed: Bed, shipped: Loader) -> None:
    """playbooks.paused refuses every automatic run; the metric's scope is 'config'."""
    registry = CollectorRegistry()
    engine = bed.engine([shipped("int8-to-fp16")], registry=registry, paused=True)
    [result] = await drive(bed.clock, engine.consider(incident("accuracy_drift", bed.clock.now())))
    assert Guard.PAUSED == result.refused_by
    assert "playbooks.paused" in result.reason
    assert 1.0 == registry.get_sample_value("sentinel_automation_paused", {"scope": "config"})


async def test_pod_annotation_file_opts_the_pod_out(
    bed: Bed, shipped: Loader, tmp_path: Path
) -> None:
    """The downward-API annotation sentinel.dev/paused="true" pauses; "false" does not."""
    annotations = tmp_path / "annotations"
    annotations.write_text('app="triton"\nsentinel.dev/paused="true"\n', encoding="utf-8")
    engine = bed.engine([shipped("int8-to-fp16")], pause_annotations_file=annotations)
    inc = incident("accuracy_drift", bed.clock.now())
    [result] = await drive(bed.clock, engine.consider(inc))
    assert Guard.PAUSED == result.refused_by
    annotations.write_text('sentinel.dev/paused="false"\n', encoding="utf-8")
    [result] = await drive(bed.clock, engine.consider(inc))
    assert "succeeded" == result.status


async def test_other_pages_while_paused_say_so(bed: Bed, shipped: Loader) -> None:
    """A page from a run a pause does not cover still tells that automation is paused."""
    bed.canary.agreement = lambda c: 0.5  # the fix does not verify: the run pages
    engine = bed.engine([shipped("int8-to-fp16")])
    _pause(bed, playbook="restart-server")
    [result] = await drive(bed.clock, engine.consider(incident("accuracy_drift", bed.clock.now())))
    assert "failed" == result.status
    [page] = bed.teller.of(PageRequest)
    assert "[automation paused (playbook=restart-server) by alice" in page.reason


async def test_lease_restore_waits_while_its_playbook_is_paused(bed: Bed, shipped: Loader) -> None:
    """A pause covers the lease keeper's restore too: deferred, not done, until resumed."""
    engine = bed.engine([shipped("reduce-batch-size")], lease_check_interval_s=60)
    bed.triton.configs["digits"]["parameters"]["precision"]["string_value"] = "fp32"
    original = bed.triton.configs["digits"]["max_batch_size"]
    inc = incident("latency_spike", bed.clock.now(), age=40)
    await engine.handle(IncidentChanged(inc, "opened"))
    await drive(bed.clock, engine.idle())
    resolved = incident("latency_spike", bed.clock.now(), status=IncidentStatus.RESOLVED)
    await engine.handle(IncidentChanged(resolved, "resolved"))
    pause = _pause(bed, playbook="reduce-batch-size")
    await bed.clock.advance(1800)
    events = await drive(bed.clock, engine.leases.tick())
    assert ["deferred"] == [e["event"] for e in events]
    assert original // 2 == bed.triton.configs["digits"]["max_batch_size"]
    [lease] = engine.history.leases()
    assert "deferred by the paused guard" in lease["note"]
    PauseStore(bed.conn).resume(pause.id, "bob", bed.clock.now())
    await bed.clock.advance(1800)
    events = await drive(bed.clock, engine.leases.tick())
    assert ["restored"] == [e["event"] for e in events]
    assert original == bed.triton.configs["digits"]["max_batch_size"]
