"""The executor over stand-ins: act, verify, roll back, dry-run, retries, timeouts."""

from __future__ import annotations

from collections.abc import Callable

from runbook_standins import DIGITS_CONFIG, Bed, drive, incident, precision_of

from sentinel.runbook.actions.triton import apply_patch
from sentinel.runbook.schema import LoadedPlaybook
from sentinel.vocabulary.notices import ActionUpdate, PageRequest
from sentinel.vocabulary.samples import CanaryResult

Loader = Callable[[str], LoadedPlaybook]


async def test_int8_drift_switches_to_fp16_and_verifies(bed: Bed, shipped: Loader) -> None:
    """int8-to-fp16 reloads with precision fp16, verifies agreement, marks mitigating."""
    engine = bed.engine([shipped("int8-to-fp16")])
    inc = incident("accuracy_drift", bed.clock.now())
    results = await drive(bed.clock, engine.consider(inc))
    assert ["succeeded"] == [r.status for r in results]
    assert "fp16" == precision_of(bed.triton.configs["digits"])
    assert [(inc.id, results[0].run_id)] == bed.marker.marked
    verify_rows = [s for s in results[0].steps if s["phase"] == "verify"]
    assert ["verified"] == [s["status"] for s in verify_rows]
    assert bed.canary.rounds >= 2  # rounds: 2 in the playbook


async def test_failed_verification_rolls_back_and_pages(bed: Bed, shipped: Loader) -> None:
    """When FP16 does not verify, the snapshot is reloaded and a human is paged."""
    bed.canary.agreement = lambda c: 0.5  # nothing helps
    engine = bed.engine([shipped("int8-to-fp16")])
    original = dict(bed.triton.configs["digits"])
    [result] = await drive(bed.clock, engine.consider(incident("accuracy_drift", bed.clock.now())))
    assert "failed" == result.status
    assert original == bed.triton.configs["digits"]
    phases = [(s["phase"], s["status"]) for s in result.steps]
    assert ("rollback", "rolled_back") in phases
    assert ("on_failure", "succeeded") in phases
    pages = bed.teller.of(PageRequest)
    assert 1 == len(pages)
    assert "did not bring" in pages[0].reason
    assert bed.marker.refired == [pages[0].incident.id]


async def test_dry_run_calls_nothing_and_tells_no_one(bed: Bed, shipped: Loader) -> None:
    """A dry run records the rendered plan; no mutation, no notice, no page."""
    engine = bed.engine([shipped("reduce-batch-size")], dry_run=True)
    before = dict(bed.triton.configs["digits"])
    inc = incident("latency_spike", bed.clock.now())
    [result] = await drive(bed.clock, engine.consider(inc))
    assert "planned" == result.status
    assert before == bed.triton.configs["digits"]
    assert [] == bed.triton.mutations()
    assert [] == bed.teller.notices
    assert [] == bed.marker.marked
    [step] = result.steps
    assert ("planned", DIGITS_CONFIG["max_batch_size"] // 2) == (
        step["status"],
        step["params"]["patch"]["max_batch_size"],
    )


async def test_shadow_mode_is_a_dry_run(bed: Bed, write_playbook: Loader) -> None:
    """mode: shadow plans and records like a dry run."""
    lp = write_playbook(
        "name: s\nmode: shadow\nsteps:\n  - name: a\n    action: triton.load_model\n"
        "    with: {model: digits, patch: {max_batch_size: 2}}\n"
    )
    engine = bed.engine([lp])
    result = await engine.run_manual("s", {"model": "digits"}, actor="alice")
    assert ("planned", True) == (result.status, result.dry_run)
    assert [] == bed.triton.mutations()


async def test_transient_error_is_retried_with_backoff(bed: Bed, shipped: Loader) -> None:
    """A refused connection is retried; the step records its attempts."""
    bed.triton.transient_failures = 2
    engine = bed.engine([shipped("int8-to-fp16")])
    [result] = await drive(bed.clock, engine.consider(incident("accuracy_drift", bed.clock.now())))
    [load] = [s for s in result.steps if s["name"] == "to_fp16" and s["phase"] == "step"]
    assert ("succeeded", 3) == (load["status"], load["attempts"])
    assert "succeeded" == result.status


async def test_triton_refusing_a_config_fails_the_step(bed: Bed, write_playbook: Loader) -> None:
    """A config Triton refuses is not retried; the old config stays; the run fails."""
    bed.triton.refuse = lambda c: (
        "max_batch_size must be <= 16" if c["max_batch_size"] > 16 else None
    )
    lp = write_playbook(
        "name: grow\nsteps:\n  - name: grow\n    action: triton.load_model\n"
        "    with: {model: digits, patch: {max_batch_size: 64}}\n    retry: {count: 3}\n"
    )
    engine = bed.engine([lp])
    before = dict(bed.triton.configs["digits"])
    result = await engine.run_manual("grow", {"model": "digits"})
    assert "failed" == result.status
    [step] = result.steps
    assert "Triton refused the config" in step["reason"]
    assert before == bed.triton.configs["digits"]
    assert 1 == len(bed.triton.mutations())


async def test_step_timeout_on_the_injected_clock(bed: Bed, write_playbook: Loader) -> None:
    """A step that outlives its timeout is cancelled and failed (not retried)."""
    bed.triton.ready = False
    lp = write_playbook(
        "name: w\nsteps:\n  - name: w\n    action: triton.wait_ready\n"
        "    with: {model: digits, within_s: 1000}\n    timeout: 30s\n    retry: {count: 3}\n"
    )
    engine = bed.engine([lp])
    start = bed.clock.monotonic()
    result = await drive(bed.clock, engine.run_manual("w", {"model": "digits"}))
    assert "failed" == result.status
    assert "timed out after 30 s" in result.steps[0]["reason"]
    assert bed.clock.monotonic() - start < 60


async def test_template_error_at_run_time_calls_nothing(bed: Bed, write_playbook: Loader) -> None:
    """A template that reads a missing value fails its step before any call."""
    lp = write_playbook(
        "name: t\nsteps:\n  - name: a\n    action: triton.load_model\n"
        "    with: {model: digits, patch: {max_batch_size: '{{ evidence.not_there }}'}}\n"
    )
    engine = bed.engine([lp])
    result = await engine.run_manual("t", {"model": "digits"})
    assert "failed" == result.status
    assert "undefined" in result.steps[0]["reason"]
    assert [] == bed.triton.mutations()


async def test_sandbox_escape_in_a_playbook_fails_safely(bed: Bed, write_playbook: Loader) -> None:
    """A playbook template reaching for Python internals fails its step."""
    lp = write_playbook(
        "name: x\nsteps:\n  - name: a\n    action: notify.slack\n"
        "    with: {text: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"}\n"
    )
    engine = bed.engine([lp])
    result = await engine.run_manual("x", {"model": "digits"})
    assert "failed" == result.status
    assert "refused by the sandbox" in result.steps[0]["reason"]
    notes = [n for n in bed.teller.of(ActionUpdate) if n.status == "note"]
    assert [] == notes


async def test_ladder_goes_to_the_next_rung(bed: Bed, shipped: Loader) -> None:
    """gpu-oom: a smaller batch that fails to verify is rolled back, then FP16 is tried."""
    # the OOM goes away only with fp16 (agreement fine in fp16 and fp32, never int8 here)
    bed.triton.configs["digits"]["parameters"]["precision"]["string_value"] = "fp32"
    bed.canary.agreement = lambda c: 1.0 if precision_of(c) == "fp16" else 0.0
    engine = bed.engine([shipped("gpu-oom")])
    [result] = await drive(bed.clock, engine.consider(incident("gpu_oom", bed.clock.now())))
    rows = [(s["phase"], s["name"], s["status"]) for s in result.steps]
    assert ("rollback", "reduce_batch", "rolled_back") in rows
    assert ("verify", "to_fp16", "verified") in rows
    assert ("step", "restart", "skipped") in rows
    expected = apply_patch(DIGITS_CONFIG, {"precision": "fp16"})
    assert expected == bed.triton.configs["digits"]
    assert "succeeded" == result.status


async def test_latency_is_verified_against_the_pre_incident_baseline(
    bed: Bed, shipped: Loader
) -> None:
    """reduce-batch-size fails verification when latency stays above 1.2x the baseline p99."""
    bed.triton.configs["digits"]["parameters"]["precision"]["string_value"] = "fp32"
    baseline = 0.010
    now = bed.clock.now()
    bed.facts.canary_results = [
        CanaryResult(
            ts=now - 600 + i,
            model="digits",
            version="1",
            batch_size=1,
            outcome="ok",
            latency_s=baseline,
        )
        for i in range(50)
    ]
    bed.canary.latency = lambda c: baseline * 1.5 if c["max_batch_size"] > 8 else baseline
    engine = bed.engine([shipped("reduce-batch-size")])
    [slow] = await drive(bed.clock, engine.consider(incident("latency_spike", now, age=40)))
    assert "failed" == slow.status
    [verify_row] = [s for s in slow.steps if s["phase"] == "verify"]
    assert baseline == verify_row["output"]["baseline_p99_s"]
    assert 32 == bed.triton.configs["digits"]["max_batch_size"]  # rolled back
    bed.canary.latency = lambda c: baseline * 1.5 if c["max_batch_size"] > 16 else baseline
    await bed.clock.advance(3600)
    [fast] = await drive(
        bed.clock, engine.consider(incident("latency_spike", bed.clock.now(), age=40))
    )
    assert "succeeded" == fast.status
    assert 32 // 2 == bed.triton.configs["digits"]["max_batch_size"]
