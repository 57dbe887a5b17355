"""The emitted playbook JSON Schema: standard, accepts every shipped playbook, shipped
up to date, and refuses what validation refuses about durations, kinds and actions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sentinel.runbook.schema import SCHEMA_ID, json_schema

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "playbooks").glob("*.yaml"))


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json_schema())


def _errors(data: Any) -> list[str]:
    return [e.message for e in _validator().iter_errors(data)]


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    """The schema itself passes the metaschema (no stray keywords like 'ge')."""
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set() == _keywords(schema) & {"ge", "gt", "le", "lt"}


def _keywords(node: Any) -> set[str]:
    """Every key used anywhere in the schema (property names included)."""
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keywords(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keywords(v)}
    return set()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_playbook_passes_the_schema(path: Path) -> None:
    """Each file in playbooks/ is accepted by the JSON Schema editors use."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert [] == _errors(data)


def test_shipped_schema_file_is_up_to_date() -> None:
    """playbooks/playbook.schema.json is what `sentinel playbook schema` emits now."""
    shipped = json.loads((ROOT / SCHEMA_ID).read_text(encoding="utf-8"))
    assert json_schema() == shipped


def _minimal(**trigger: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "triggers": [{"kinds": ["latency_spike"], **trigger}],
        "steps": [{"name": "w", "action": "wait", "with": {"seconds": 1}}],
    }


def test_durations_are_strings_with_units_or_numbers() -> None:
    """'30s', '1.5h', '500ms' and 30 pass; '30 sec' and -1 do not."""
    assert [[], [], [], []] == [
        _errors(_minimal(**{"for": v})) for v in ("30s", "1.5h", "500ms", 30)
    ]
    assert all(_errors(_minimal(**{"for": v})) for v in ("30 sec", -1))


def test_unknown_kind_and_action_fail_the_schema() -> None:
    """A misspelt trigger kind or action name is flagged by the editor's schema too."""
    bad_kind = _minimal()
    bad_kind["triggers"][0]["kinds"] = ["latency_spik"]
    bad_action = _minimal()
    bad_action["steps"][0]["action"] = "wiat"
    assert 1 == len(_errors(bad_kind))
    assert 1 == len(_errors(bad_action))


def _step_with(action: str, params: dict[str, Any]) -> dict[str, Any]:
    data = _minimal()
    data["steps"][0].update({"action": action, "with": params, "rollback": "none"})
    return data


def test_each_actions_parameters_are_in_the_schema() -> None:
    """An editor flags wait_exit_s: -5 and an unknown parameter, as validate does."""
    assert 1 == len(_errors(_step_with("process.signal", {"wait_exit_s": -5})))
    assert 1 == len(_errors(_step_with("process.signal", {"kill_after": 30})))
    assert 1 == len(_errors(_step_with("triton.load_model", {"model": "m", "patch": {"x": 1}})))


def test_templated_parameters_pass_the_schema() -> None:
    """A template where a number goes is accepted (it is typed once rendered)."""
    params = {"model": "{{ target.model }}", "patch": {"max_batch_size": "{{ 2 * 2 }}"}}
    assert [] == _errors(_step_with("triton.load_model", params))
