"""Site overrides of shipped playbooks (`playbooks.overrides`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.runbook.schema import apply_override, load_dirs

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def test_override_merges_mappings_and_patches_steps_by_name() -> None:
    """Mappings merge, lists replace, and steps are patched by their name."""
    found, problems = load_dirs(
        [PLAYBOOKS],
        {
            "reduce-batch-size": {
                "triggers": [{"kinds": ["latency_spike"], "for": "2s"}],
                "guards": {"cooldown": "1m"},
                "steps": {"halve_batch": {"restore_after": "15s"}},
            },
            "restart-server": {"params": {"min_uptime_s": "5"}},
        },
    )
    assert [] == problems
    reduce = found["reduce-batch-size"].playbook
    assert (["latency_spike"], 2.0) == (reduce.triggers[0].kinds, reduce.triggers[0].for_)
    assert 15.0 == reduce.steps[0].restore_after
    assert {"min_uptime_s": "5"} == found["restart-server"].playbook.params
    # the budget was not named in the override, so it is kept from the file
    assert 3 == reduce.guards.budget.runs


def test_override_changes_the_recorded_hash() -> None:
    """A run records which override was in force: the playbook hash covers it."""
    plain, _ = load_dirs([PLAYBOOKS])
    tuned, _ = load_dirs([PLAYBOOKS], {"restart-server": {"params": {"min_uptime_s": "5"}}})
    assert plain["restart-server"].sha256 != tuned["restart-server"].sha256
    assert plain["gpu-oom"].sha256 == tuned["gpu-oom"].sha256


def test_override_of_a_missing_step_or_playbook_is_a_problem() -> None:
    """Naming a step or playbook that does not exist is reported, not ignored."""
    found, problems = load_dirs(
        [PLAYBOOKS],
        {"reduce-batch-size": {"steps": {"nope": {"timeout": "1s"}}}, "ghost": {"mode": "shadow"}},
    )
    messages = sorted(f"{p.field}: {p.message}" for p in problems)
    assert [
        "overrides: steps.nope: no step of that name to override",
        "playbooks.overrides.ghost: no such playbook",
    ] == messages
    assert "reduce-batch-size" not in found


def test_override_value_of_the_wrong_type_names_the_field() -> None:
    """A bad value in an override fails validation like a bad file would."""
    _, problems = load_dirs([PLAYBOOKS], {"restart-server": {"guards": {"cooldown": "soon"}}})
    assert ["guards.cooldown"] == [p.field for p in problems]


def test_apply_override_does_not_touch_its_input() -> None:
    """The loaded YAML is not mutated by merging."""
    data = {"guards": {"cooldown": "1m"}, "steps": [{"name": "a", "timeout": "1s"}]}
    apply_override(data, {"guards": {"cooldown": "2m"}, "steps": {"a": {"timeout": "2s"}}})
    assert {"guards": {"cooldown": "1m"}, "steps": [{"name": "a", "timeout": "1s"}]} == data


@pytest.mark.parametrize("playbook", ["restart-server", "gpu-oom"])
def test_shipped_restart_guards_read_min_uptime_from_params(playbook: str) -> None:
    """The restart guard's minimum uptime is a parameter a site can lower."""
    found, _ = load_dirs([PLAYBOOKS])
    assert "600" == found[playbook].playbook.params["min_uptime_s"]
