"""Playbook files: validation with file/line/field problems, and the JSON Schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.base.yamlsource import InvalidFile
from sentinel.runbook.schema import json_schema, load_dirs, load_playbook

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: t
triggers:
  - kinds: [latency_spike]
    for: 30s
steps:
  - name: halve
    action: triton.load_model
    with: {model: "{{ target.model }}", patch: {max_batch_size: 4}}
"""


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidFile) as err:
        load_playbook(path)
    return [str(p) for p in err.value.problems]


def test_shipped_playbooks_are_valid() -> None:
    """Every playbook shipped in playbooks/ validates, under its own file name."""
    found, problems = load_dirs([ROOT / "playbooks"])
    names = sorted(p.stem for p in (ROOT / "playbooks").glob("*.yaml"))
    assert [] == [str(p) for p in problems]
    assert names == sorted(found)


def test_durations_are_parsed_to_seconds(tmp_path: Path) -> None:
    """'30s' in a trigger's for: becomes 30.0 seconds."""
    path = tmp_path / "p.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert 30.0 == load_playbook(path).playbook.triggers[0].for_


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    """A YAML syntax error is reported with its file and line."""
    text = GOOD + "  - name: [unclosed\n"
    problems = problems_of(tmp_path, text)
    assert 1 == len(problems)
    assert problems[0].startswith(f"{tmp_path / 'p.yaml'}:")
    assert "invalid YAML" in problems[0]


def test_unknown_action_names_line_and_field(tmp_path: Path) -> None:
    """An unknown action is reported at its own line, with the field path."""
    text = GOOD.replace("triton.load_model", "triton.reboot_everything")
    problems = problems_of(tmp_path, text)
    line = text.splitlines().index("    action: triton.reboot_everything") + 1
    assert [f"{tmp_path / 'p.yaml'}:{line}: steps.0.action"] == [
        p.split(": Value error")[0] for p in problems
    ]
    assert "unknown action 'triton.reboot_everything'" in problems[0]


def test_template_syntax_error_is_caught_at_validation(tmp_path: Path) -> None:
    """A broken template fails validation, not the run."""
    text = GOOD.replace("{{ target.model }}", "{{ target.model ")
    problems = problems_of(tmp_path, text)
    assert 1 == len(problems)
    assert "steps.0.with" in problems[0]
    assert "bad template" in problems[0]


def test_mutating_step_needs_a_way_back(tmp_path: Path) -> None:
    """A side-effecting action that cannot undo itself needs rollback: or rollback: none."""
    step = 'action: triton.load_model\n    with: {model: "{{ target.model }}", '
    text = GOOD.replace(
        step + "patch: {max_batch_size: 4}}",
        "action: process.signal\n    with: {signal: SIGTERM}",
    )
    problems = problems_of(tmp_path, text)
    assert 1 == len(problems)
    assert "cannot undo itself" in problems[0]
    path = tmp_path / "ok.yaml"
    path.write_text(text + "    rollback: none\n", encoding="utf-8")
    assert "none" == load_playbook(path).playbook.steps[0].rollback


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    """A misspelt key is an error with a 'did you mean' hint."""
    problems = problems_of(tmp_path, GOOD.replace("    for: 30s", "    fro: 30s"))
    assert 1 == len(problems)
    assert "did you mean 'for'" in problems[0]


def test_duplicate_step_names_are_refused(tmp_path: Path) -> None:
    """Two steps with one name would make steps.NAME ambiguous."""
    text = GOOD + ("  - name: halve\n    action: wait\n    with: {seconds: 1}\n")
    assert any("used twice" in p for p in problems_of(tmp_path, text))


def test_bad_duration_is_refused(tmp_path: Path) -> None:
    """'soon' is not a duration."""
    problems = problems_of(tmp_path, GOOD.replace("for: 30s", "for: soon"))
    assert 1 == len(problems)
    assert "triggers.0.for" in problems[0]


def test_json_schema_describes_steps() -> None:
    """The JSON Schema names the playbook's top-level keys, aliases included."""
    schema = json_schema()
    assert {"name", "steps", "triggers", "guards", "on_failure", "when"} <= set(
        schema["properties"]
    )
    assert "with" in schema["$defs"]["Step"]["properties"]
