"""Action adapters: config patches, process control, Kubernetes absence, notify."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from runbook_standins import DIGITS_CONFIG, Bed, drive, incident

from sentinel.runbook.actions import REGISTRY
from sentinel.runbook.actions.base import ActionContext
from sentinel.runbook.actions.process import find_server_pid
from sentinel.runbook.actions.triton import apply_patch, revert_patch
from sentinel.runbook.errors import ActionError
from sentinel.runbook.settings import RunbookSettings
from sentinel.vocabulary.notices import PageRequest
from sentinel.vocabulary.samples import CanaryResult, GpuProcess, GpuSample


def ctx(bed: Bed, **settings: Any) -> ActionContext:
    return ActionContext(
        clock=bed.clock,
        settings=RunbookSettings(dirs=[], **settings),
        incident=incident("gpu_oom", bed.clock.now()),
        playbook="p",
        run_id="r1",
        step="s",
        triton=bed.triton,
        canary=bed.canary,
        facts=bed.facts,
        teller=bed.teller,
    )


def test_patch_covers_every_documented_field() -> None:
    """precision, filename, version policy, batch, batching and instances all patch."""
    patch = {
        "precision": "fp16",
        "default_model_filename": "model_fp16.plan",
        "version_policy": {"specific": {"versions": [2]}},
        "max_batch_size": 8,
        "dynamic_batching": {"max_queue_delay_microseconds": 100},
        "instance_count": 2,
    }
    new = apply_patch(DIGITS_CONFIG, patch)
    assert "fp16" == new["parameters"]["precision"]["string_value"]
    assert "model_fp16.plan" == new["default_model_filename"]
    assert {"specific": {"versions": [2]}} == new["version_policy"]
    assert 8 == new["max_batch_size"]
    assert {"max_queue_delay_microseconds": 100} == new["dynamic_batching"]
    assert [2] == [g["count"] for g in new["instance_group"]]
    assert "int8" == DIGITS_CONFIG["parameters"]["precision"]["string_value"]  # not mutated


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"max_batch_size": -1}, "must be >= 0"),
        ({"max_batch_size": "lots"}, "expected an integer"),
        ({"instance_count": 0}, "must be >= 1"),
        ({"version_policy": {"newest": 1}}, "version_policy"),
        ({"backend": "onnxruntime"}, "not a patchable field"),
    ],
)
def test_bad_patches_are_refused(patch: dict[str, Any], message: str) -> None:
    """A patch Triton should never see is refused with the field named."""
    with pytest.raises(ActionError, match=message):
        apply_patch(DIGITS_CONFIG, patch)


def test_dynamic_batching_false_removes_it() -> None:
    """dynamic_batching: false turns the batcher off."""
    assert "dynamic_batching" not in apply_patch(DIGITS_CONFIG, {"dynamic_batching": False})


def test_server_pid_is_found_by_name_in_proc(tmp_path: Path) -> None:
    """The oldest process whose comm is tritonserver is the server."""
    for pid, comm in ((40, "bash"), (77, "tritonserver"), (90, "tritonserver"), (5, "sleep")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "comm").write_text(comm + "\n")
    (tmp_path / "self").mkdir()
    assert 77 == find_server_pid(None, ["tritonserver"], proc=tmp_path)
    with pytest.raises(ActionError, match="no process named"):
        find_server_pid(None, ["other"], proc=tmp_path)


async def test_signal_reaches_the_server_by_pid_file(bed: Bed, tmp_path: Path) -> None:
    """process.signal sends an allowlisted signal to the pid in the pid file."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)"
    )
    try:
        pid_file = tmp_path / "triton.pid"
        pid_file.write_text(f"{child.pid}\n")
        out = await drive(
            bed.clock,
            REGISTRY["process.signal"].run(
                ctx(bed, server_pid_file=pid_file), {"signal": "SIGTERM", "wait_exit_s": 30}
            ),
            step=0.5,
            real_pause=0.01,
        )
        assert (out["pid"], out["signal"]) == (child.pid, "SIGTERM")
        assert out["exited_after_s"] < 30
        assert -15 == await asyncio.wait_for(child.wait(), 10)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def test_signal_outside_the_allowlist_is_refused(bed: Bed, tmp_path: Path) -> None:
    """A signal (or SIGKILL escalation) is refused unless the settings list it."""
    with pytest.raises(ActionError, match=r"not in playbooks\.allowed_signals"):
        await REGISTRY["process.signal"].run(ctx(bed), {"signal": "SIGUSR1"})
    strict = ctx(bed, allowed_signals=["SIGTERM"])
    with pytest.raises(ActionError, match=r"SIGKILL is not in playbooks\.allowed_signals"):
        await REGISTRY["process.signal"].run(strict, {"signal": "SIGTERM", "kill_after_s": 5})


async def test_signal_escalates_to_sigkill_for_a_server_that_ignores_sigterm(
    bed: Bed, tmp_path: Path
) -> None:
    """A hung server that ignores SIGTERM is killed after kill_after_s (a kubelet's grace)."""
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", stubborn)
    try:
        await asyncio.sleep(0.3)  # let it install its handler
        pid_file = tmp_path / "triton.pid"
        pid_file.write_text(f"{child.pid}\n")
        out = await drive(
            bed.clock,
            REGISTRY["process.signal"].run(
                ctx(bed, server_pid_file=pid_file),
                {"signal": "SIGTERM", "kill_after_s": 2, "wait_exit_s": 10},
            ),
            step=0.5,
            real_pause=0.01,
        )
        assert (child.pid, 2.0) == (out["pid"], out["killed_after_s"])
        assert -9 == await asyncio.wait_for(child.wait(), 10)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def test_exec_runs_only_allowlisted_argv(bed: Bed) -> None:
    """process.exec runs a named argv (no shell); unknown names and failures are errors."""
    c = ctx(
        bed,
        commands={
            "hello": [sys.executable, "-c", "print('restarted; $HOME')"],
            "boom": [sys.executable, "-c", "raise SystemExit(3)"],
        },
    )
    out = await REGISTRY["process.exec"].run(c, {"command": "hello"})
    assert ("restarted; $HOME\n", 0) == (out["output"], out["returncode"])
    with pytest.raises(ActionError, match=r"not in playbooks\.commands"):
        await REGISTRY["process.exec"].run(c, {"command": "rm -rf /"})
    with pytest.raises(ActionError, match="exited with 3"):
        await REGISTRY["process.exec"].run(c, {"command": "boom"})


async def test_pagerduty_verbs_go_through_the_teller(bed: Bed) -> None:
    """pagerduty.trigger/acknowledge/resolve become PageRequests with that action."""
    for verb in ("trigger", "acknowledge", "resolve"):
        await REGISTRY[f"pagerduty.{verb}"].run(ctx(bed), {"reason": f"r-{verb}"})
    pages = bed.teller.of(PageRequest)
    assert [
        ("trigger", "r-trigger"),
        ("acknowledge", "r-acknowledge"),
        ("resolve", "r-resolve"),
    ] == [(p.action, p.reason) for p in pages]


async def test_diagnostics_capture_gpu_processes_and_canaries(bed: Bed) -> None:
    """diagnostics.capture gathers GPU facts (foreign memory), statistics and canaries."""
    bed.facts.gpu_samples = [
        GpuSample(
            ts=1.0,
            index=0,
            uuid="GPU-1",
            clock_event_reasons=0x80,
            processes=(
                GpuProcess(pid=1, used_bytes=100, name="tritonserver"),
                GpuProcess(pid=2, used_bytes=300, name="stress"),
            ),
        )
    ]
    bed.facts.canary_results = [
        CanaryResult(ts=float(i), model="digits", version="1", batch_size=1, outcome="ok")
        for i in range(30)
    ]
    out = await REGISTRY["diagnostics.capture"].run(ctx(bed), {"model": "digits", "canaries": 5})
    [gpu] = out["gpus"]
    assert (300, True, False) == (
        gpu["foreign_memory_bytes"],
        gpu["hw_power_brake"],
        gpu["hw_thermal_slowdown"],
    )
    assert [25.0, 26.0, 27.0, 28.0, 29.0] == [c["ts"] for c in out["canaries"]]
    assert "digits" == out["statistics"]["model_stats"][0]["name"]


def test_revert_patch_keeps_changes_made_since() -> None:
    """A lease restore reverts only the patched fields; an operator's later edit stays."""
    patch = {"max_batch_size": 8, "precision": "fp16"}
    degraded = apply_patch(DIGITS_CONFIG, patch)
    since = apply_patch(degraded, {"parameters": {"delay_ms": "0"}, "instance_count": 3})
    restored = revert_patch(since, DIGITS_CONFIG, patch)
    expected = apply_patch(DIGITS_CONFIG, {"parameters": {"delay_ms": "0"}, "instance_count": 3})
    assert restored == expected


def test_smaller_batch_trims_preferred_sizes_and_restore_puts_them_back() -> None:
    """Preferred batch sizes above the new max are dropped (Triton refuses them), then restored."""
    config = {**DIGITS_CONFIG, "dynamic_batching": {"preferred_batch_size": [4, 32]}}
    smaller = apply_patch(config, {"max_batch_size": 16})
    assert [4] == smaller["dynamic_batching"]["preferred_batch_size"]
    assert {"preferred_batch_size": [2]} == apply_patch(config, {"max_batch_size": 2})[
        "dynamic_batching"
    ]
    assert config == revert_patch(smaller, config, {"max_batch_size": 16})
