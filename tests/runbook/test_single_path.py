"""Every change to a target goes through the executor: the code has one path to the
actions (proved on the source with ``ast``), and lease restores -- once a path around
it -- are refused or serialized by each of its guards."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from runbook_standins import Bed, drive, incident

from sentinel.runbook.engine import Engine
from sentinel.runbook.schema import LoadedPlaybook
from sentinel.vocabulary.incidents import IncidentStatus
from sentinel.vocabulary.notices import IncidentChanged, PageRequest
from sentinel.vocabulary.samples import GpuSample

Loader = Callable[[str], LoadedPlaybook]
HALF_HOUR = 30 * 60
SENTINEL = Path(__file__).resolve().parents[2] / "sentinel"
ACTIONS = SENTINEL / "runbook" / "actions"
MUTATION_MODULES = {
    "sentinel.runbook.actions.triton",
    "sentinel.runbook.actions.process",
    "sentinel.runbook.actions.k8s",
    "sentinel.runbook.actions.model_repo",
}
READ_ONLY_HELPERS = {"find_server_pid"}
"""Names of the mutation modules that only read (the server's pid for the config)."""


def _modules(*, outside: tuple[Path, ...] = (ACTIONS,)) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SENTINEL.rglob("*.py")):
        if any(path.is_relative_to(o) for o in outside):
            continue
        rel = str(path.relative_to(SENTINEL.parent))
        yield rel, ast.parse(path.read_text(encoding="utf-8"), rel)


def _calls(tree: ast.Module, attrs: set[str]) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in attrs
    ]


def test_only_steps_and_rollback_reach_the_action_registry() -> None:
    """No module but the step runner and rollback names REGISTRY (the callable actions)."""
    users = {
        rel
        for rel, tree in _modules()
        if any(isinstance(n, ast.Name) and n.id == "REGISTRY" for n in ast.walk(tree))
        or any(
            isinstance(n, ast.ImportFrom) and any(a.name == "REGISTRY" for a in n.names)
            for n in ast.walk(tree)
        )
    }
    assert {"sentinel/runbook/steps.py", "sentinel/runbook/rollback.py"} == users


def test_only_steps_and_rollback_call_run_or_undo_on_an_action() -> None:
    """``x.run(...)``/``x.undo(...)`` on an action taken from REGISTRY: only on the step path."""
    callers = set()
    for rel, tree in _modules():
        bound = {
            t.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Subscript)
            and isinstance(n.value.value, ast.Name)
            and n.value.value.id == "REGISTRY"
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for call in _calls(tree, {"run", "undo"}):
            receiver = call.func.value  # type: ignore[attr-defined]
            direct = isinstance(receiver, ast.Subscript) and getattr(receiver.value, "id", "") == (
                "REGISTRY"
            )
            if direct or (isinstance(receiver, ast.Name) and receiver.id in bound):
                callers.add(rel)
    assert {"sentinel/runbook/steps.py", "sentinel/runbook/rollback.py"} == callers


def test_no_module_outside_the_actions_imports_their_mutations() -> None:
    """Triton, process, k8s and model-file actions are imported by nothing but the registry."""
    found = []
    for rel, tree in _modules():
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and n.module in MUTATION_MODULES:
                found += [f"{rel}: {a.name}" for a in n.names if a.name not in READ_ONLY_HELPERS]
            if isinstance(n, ast.Import):
                found += [f"{rel}: {a.name}" for a in n.names if a.name in MUTATION_MODULES]
    assert [] == found


def test_no_module_outside_the_actions_loads_signals_or_writes_kubernetes() -> None:
    """load/unload_model, os.kill and Kubernetes writes are called only inside the actions.

    Allowed elsewhere: the Triton clients implementing the port (probes), the demo's
    fault injection and test harnesses, kube.py's own Lease helpers (coordination), and
    the notifiers' HTTP client (it POSTs pages to Slack, PagerDuty and Alertmanager).
    """
    outside = (ACTIONS, SENTINEL / "probes", SENTINEL / "testing", SENTINEL / "demo")
    found = []
    for rel, tree in _modules(outside=outside):
        for call in _calls(tree, {"load_model", "unload_model", "kill", "killpg"}):
            found.append(f"{rel}:{call.lineno} {call.func.attr}")  # type: ignore[attr-defined]
        if rel in ("sentinel/runbook/kube.py", "sentinel/notify/http.py"):
            continue
        for call in _calls(tree, {"request"}):
            method = call.args[0] if call.args else None
            if isinstance(method, ast.Constant) and method.value in ("POST", "PATCH", "DELETE"):
                found.append(f"{rel}:{call.lineno} request {method.value}")
    assert [] == found


def test_fleet_guard_and_breaker_are_asked_on_the_step_path_only() -> None:
    """``fleet.acquire`` and the breaker check live in steps.py: every step passes them."""
    acquire = {rel for rel, tree in _modules() if _calls(tree, {"acquire"})}
    breaker = {rel for rel, tree in _modules() if _calls(tree, {"mutating_actions_since"})}
    assert ({"sentinel/runbook/steps.py"}, {"sentinel/runbook/steps.py"}) == (acquire, breaker)


# -- lease restores meet every guard ------------------------------------------------------


async def _leased(bed: Bed, shipped: Loader, **settings: Any) -> tuple[Engine, int]:
    """reduce-batch-size halved the batch as a lease; the incident then cleared."""
    engine = bed.engine([shipped("reduce-batch-size")], lease_check_interval_s=60, **settings)
    bed.triton.configs["digits"]["parameters"]["precision"]["string_value"] = "fp32"
    original = int(bed.triton.configs["digits"]["max_batch_size"])
    await engine.handle(
        IncidentChanged(incident("latency_spike", bed.clock.now(), age=40), "opened")
    )
    await drive(bed.clock, engine.idle())
    resolved = incident("latency_spike", bed.clock.now(), status=IncidentStatus.RESOLVED)
    await engine.handle(IncidentChanged(resolved, "resolved"))
    assert original // 2 == bed.triton.configs["digits"]["max_batch_size"]
    await bed.clock.advance(HALF_HOUR)
    return engine, original


def _lease_runs(engine: Engine) -> list[dict[str, Any]]:
    return [r for r in engine.history.runs(50) if r["playbook"].startswith("lease-")]


async def test_restore_is_an_audited_executor_run(bed: Bed, shipped: Loader) -> None:
    """A restore is a run row (actor lease:ID) with its step, verify row, and breaker count."""
    engine, original = await _leased(bed, shipped)
    before = engine.history.mutating_actions_since(0)
    events = await drive(bed.clock, engine.leases.tick())
    [lease_run] = _lease_runs(engine)
    [lease] = engine.history.leases()
    assert ["restored"] == [e["event"] for e in events]
    assert original == bed.triton.configs["digits"]["max_batch_size"]
    assert ("lease-restore", f"lease:{lease['id']}", "succeeded") == (
        lease_run["playbook"],
        lease_run["actor"],
        lease_run["status"],
    )
    assert [
        ("step", "triton.restore_config", "succeeded"),
        ("verify", "canary.verify", "verified"),
    ] == [(s["phase"], s["action"], s["status"]) for s in lease_run["steps"]]
    assert before + 1 == engine.history.mutating_actions_since(0)


async def test_restore_waits_while_a_playbook_holds_the_model(
    bed: Bed, shipped: Loader, write_playbook: Loader
) -> None:
    """A running playbook's lock refuses the restore (recorded); the next check restores."""
    engine, original = await _leased(bed, shipped)
    engine.playbooks["slow"] = write_playbook(
        "name: slow\nsteps:\n  - name: wait\n    action: wait\n    with: {seconds: 30}\n"
    )
    task = asyncio.ensure_future(engine.run_manual("slow", {"model": "digits"}))
    for _ in range(1000):  # let the run take its lock (a few awaits in)
        if engine.history.lock_holder("pod-a/digits") is not None:
            break
        await asyncio.sleep(0)
    events = await engine.leases.tick()
    [refused] = _lease_runs(engine)
    assert ["deferred"] == [e["event"] for e in events]
    assert ("skipped", original // 2) == (
        refused["status"],
        bed.triton.configs["digits"]["max_batch_size"],
    )
    assert "is already acting on pod-a/digits" in refused["reason"]
    assert "succeeded" == (await drive(bed.clock, task, step=10)).status
    events = await drive(bed.clock, engine.leases.tick())
    assert ["restored"] == [e["event"] for e in events]
    assert original == bed.triton.configs["digits"]["max_batch_size"]


async def test_open_breaker_refuses_a_restore(bed: Bed, shipped: Loader) -> None:
    """With the breaker open a restore is blocked, recorded and paged; nothing is loaded."""
    engine, original = await _leased(bed, shipped)
    engine.history.open_breaker(bed.clock.now(), "too many actions")
    loads = len(bed.triton.mutations())
    events = await engine.leases.tick()
    [refused] = _lease_runs(engine)
    assert ["deferred"] == [e["event"] for e in events]
    assert ("blocked", loads) == (refused["status"], len(bed.triton.mutations()))
    assert original // 2 == bed.triton.configs["digits"]["max_batch_size"]
    assert any("circuit breaker open" in p.reason for p in bed.teller.of(PageRequest))


async def test_restores_count_toward_the_breaker(bed: Bed, shipped: Loader) -> None:
    """The restore is a counted action: at the limit, the breaker opens on it."""
    engine, original = await _leased(bed, shipped, breaker_max_actions=1)
    events = await engine.leases.tick()
    [refused] = _lease_runs(engine)
    assert ["deferred"] == [e["event"] for e in events]
    assert ("blocked", True) == (refused["status"], engine.history.breaker()["open"])
    assert original // 2 == bed.triton.configs["digits"]["max_batch_size"]


async def test_a_hung_restore_times_out_and_the_fallback_goes_back(
    bed: Bed, shipped: Loader
) -> None:
    """A restore whose reload hangs stops at its step timeout; the fallback is re-applied."""
    engine, original = await _leased(bed, shipped)
    real_load = bed.triton.load_model

    async def hang_on_the_original(model: str, config: dict[str, Any] | None = None) -> None:
        if config is not None and config["max_batch_size"] == original:
            await bed.clock.sleep(24 * 3600)
        await real_load(model, config)

    bed.triton.load_model = hang_on_the_original  # type: ignore[method-assign]
    events = await drive(bed.clock, engine.leases.tick(), step=5)
    restore, reapply = sorted(_lease_runs(engine), key=lambda r: r["started_at"])
    [lease] = engine.history.leases()
    assert ["restore_failed"] == [e["event"] for e in events]
    assert ("failed", "succeeded") == (restore["status"], reapply["status"])
    assert "timed out" in restore["steps"][0]["reason"]
    assert (original // 2, 1) == (
        bed.triton.configs["digits"]["max_batch_size"],
        lease["reapplied"],
    )


async def test_hardware_slowdown_defers_a_restore(bed: Bed, shipped: Loader) -> None:
    """The cause refusal applies to restores: a braked GPU waits a whole healthy period."""
    engine, original = await _leased(bed, shipped)
    bed.facts.gpu_samples = [
        GpuSample(ts=bed.clock.now(), index=0, uuid="GPU-1", clock_event_reasons=0x40)
    ]
    events = await engine.leases.tick()
    [refused] = _lease_runs(engine)
    [lease] = engine.history.leases()
    assert ["deferred"] == [e["event"] for e in events]
    assert ("blocked", bed.clock.now()) == (refused["status"], lease["healthy_since"])
    assert original // 2 == bed.triton.configs["digits"]["max_batch_size"]


async def test_fleet_guard_is_not_asked_for_a_config_restore(bed: Bed, shipped: Loader) -> None:
    """A restore reloads a model (not disruptive): a refusing fleet guard does not stop it."""

    class Refuse:
        def __init__(self) -> None:
            self.asked: list[str] = []

        async def acquire(self, action: str, target: str) -> bool:
            self.asked.append(action)
            return False

    engine, original = await _leased(bed, shipped)
    guard = Refuse()
    engine.ports.fleet = guard
    events = await drive(bed.clock, engine.leases.tick())
    assert (["restored"], []) == ([e["event"] for e in events], guard.asked)
    assert original == bed.triton.configs["digits"]["max_batch_size"]


async def test_reapply_waits_for_the_lock_then_puts_the_fallback_back(
    bed: Bed, shipped: Loader
) -> None:
    """A returning fault while another run holds the model: the re-apply waits (recorded)."""
    engine, original = await _leased(bed, shipped)
    await drive(bed.clock, engine.leases.tick())
    assert original == bed.triton.configs["digits"]["max_batch_size"]
    assert engine.history.try_lock("pod-a/digits", "run-by-hand", bed.clock.now()) is None
    await engine.leases.fault("digits")
    [lease] = engine.history.leases()
    assert ("watching", original) == (
        lease["state"],
        bed.triton.configs["digits"]["max_batch_size"],
    )
    assert "re-apply waits: run run-by-hand is already acting on" in lease["note"]
    engine.history.unlock("pod-a/digits", "run-by-hand")
    await engine.leases.fault("digits")
    [lease] = engine.history.leases()
    assert ("active", 1, original // 2) == (
        lease["state"],
        lease["reapplied"],
        bed.triton.configs["digits"]["max_batch_size"],
    )
