"""Every kind a detector can raise is in vocabulary.findings.FINDING_KINDS (the list
playbook triggers are checked against), and the list names no kind nobody raises.

The detectors' sources are read (AST): a kind is the ``kind=`` of a Finding, Cleared or
Episode, the first argument of ``Episode(...)`` or ``Episodes.get/find``, or the first
argument of a helper whose first parameter is ``kind``."""

from __future__ import annotations

import ast
from pathlib import Path

from sentinel.vocabulary.findings import FINDING_KINDS

DETECT = Path(__file__).resolve().parents[2] / "sentinel" / "detect"
PASS_THROUGH = {"kind", "self.kind"}
"""Expressions that carry a kind chosen elsewhere (their sources are scanned too)."""


def _constants(tree: ast.Module) -> dict[str, str]:
    out = {}
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            assert isinstance(node, ast.Assign)
            out.update({t.id: value.value for t in node.targets if isinstance(t, ast.Name)})
    return out


def _kind_arguments(tree: ast.Module) -> list[ast.expr]:
    passers = _takes_kind_first(tree)
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        found += [k.value for k in node.keywords if k.arg == "kind"]
        on_episodes = isinstance(func, ast.Attribute) and "_episodes" in ast.unparse(func.value)
        if node.args and (name in passers or (name in ("get", "find") and on_episodes)):
            found.append(node.args[0])
    return found


def _takes_kind_first(tree: ast.Module) -> set[str]:
    """Callables whose first argument is a kind: the detectors' Episode (when this module
    uses it) and the module's own helpers whose first parameter is named ``kind``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "sentinel.detect.episode":
            names |= {a.asname or a.name for a in node.names if a.name == "Episode"}
        elif isinstance(node, ast.FunctionDef):
            params = [a.arg for a in node.args.args if a.arg != "self"]
            if params[:1] == ["kind"]:
                names.add(node.name)
    return names


def _raised_kinds() -> tuple[set[str], set[str]]:
    """(kinds resolved to text, expressions that could not be resolved)."""
    kinds: set[str] = set()
    unresolved: set[str] = set()
    for path in sorted(DETECT.glob("*.py")):
        if path.name == "episode.py":
            continue  # the machinery that carries the kinds its callers (scanned) pass
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _constants(tree)
        for arg in _kind_arguments(tree):
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                kinds.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in constants:
                kinds.add(constants[arg.id])
            else:
                unresolved.add(ast.unparse(arg))
    return kinds, unresolved


def test_every_kind_a_detector_raises_is_in_the_vocabulary() -> None:
    """A new detector kind must be added to FINDING_KINDS, or triggers on it are refused."""
    kinds, _ = _raised_kinds()
    assert set() == kinds - set(FINDING_KINDS)


def test_the_vocabulary_names_no_kind_that_nobody_raises() -> None:
    """FINDING_KINDS lists only kinds some detector raises (a trigger on one would never fire)."""
    kinds, _ = _raised_kinds()
    assert set() == set(FINDING_KINDS) - kinds


def test_every_kind_expression_was_understood() -> None:
    """The scan resolves every kind argument except known pass-throughs (so none escapes it)."""
    _, unresolved = _raised_kinds()
    assert set() == unresolved - PASS_THROUGH
