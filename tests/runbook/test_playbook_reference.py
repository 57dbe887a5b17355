"""docs/playbooks.md's reference section is what the code generates now (template
variables, trigger kinds, actions and their parameters), so it cannot drift."""

from __future__ import annotations

from pathlib import Path

from sentinel.runbook.actions import ACTIONS
from sentinel.runbook.reference import BEGIN, END, reference, splice

DOC = Path(__file__).resolve().parents[2] / "docs" / "playbooks.md"


def test_generated_reference_in_the_docs_is_up_to_date() -> None:
    """Run tools/gen_playbook_docs.py after changing an action's params or the context."""
    text = DOC.read_text(encoding="utf-8")
    assert splice(text, reference()) == text


def test_reference_names_every_action_parameter_and_cause_field() -> None:
    """kill_after_s, every action and every cause.* field appear in the reference."""
    section = reference()
    wanted = ["`kill_after_s`", "`cause.hardware_throttle`", "`cause.foreign_memory`"]
    wanted += [f"#### `{name}`" for name in ACTIONS]
    assert [] == [w for w in wanted if w not in section]


def test_splice_replaces_only_between_the_markers() -> None:
    """Text around the markers is kept; the old generated text is gone."""
    doc = f"before\n{BEGIN}\nold\n{END}\nafter\n"
    assert f"before\n{BEGIN}\n\nnew\n\n{END}\nafter\n" == splice(doc, "new\n")
