"""Checks of a typed playbook that need the whole file: each step's ``with:`` against
its action's declared parameters, and every template's variables against the context
(step names and ``params`` included). Each problem comes with the path of the YAML
node it is about, so the file's line can be named."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sentinel.runbook.actions import ACTIONS
from sentinel.runbook.actions.base import param_problems
from sentinel.runbook.templating import expression_paths, variable_paths
from sentinel.runbook.variables import ROLLBACK_ONLY, check_paths, template_sources

if TYPE_CHECKING:  # schema.py calls this module when it loads a file
    from sentinel.runbook.schema import Gate, Playbook, Step

Loc = tuple[int | str, ...]


def authoring_problems(pb: Playbook) -> list[tuple[Loc, str]]:
    """Every problem found, as (path in the file, message)."""
    names = [s.name for s in [*pb.steps, *pb.on_failure]]
    checker = _Checker(names, list(pb.params))
    if pb.when is not None:
        checker.expression(("when",), pb.when)
    checker.gates(("guards", "blocked_if"), pb.guards.blocked_if)
    for key, steps in (("steps", pb.steps), ("on_failure", pb.on_failure)):
        for i, step in enumerate(steps):
            checker.step((key, i), step)
    return checker.out


class _Checker:
    def __init__(self, steps: list[str], params: list[str]) -> None:
        self.steps = steps
        self.params = params
        self.out: list[tuple[Loc, str]] = []

    def step(self, loc: Loc, step: Step) -> None:
        if step.if_ is not None:
            self.expression((*loc, "if"), step.if_)
        self.gates((*loc, "blocked_if"), step.blocked_if)
        self.with_((*loc, "with"), step.action, step.with_)
        if not isinstance(step.rollback, str):
            where = (*loc, "rollback", "with")
            self.with_(where, step.rollback.action, step.rollback.with_, ROLLBACK_ONLY)
        if step.verify is not None and isinstance(step.verify.baseline_p99_s, str):
            self.template((*loc, "verify", "baseline_p99_s"), step.verify.baseline_p99_s)

    def gates(self, loc: Loc, gates: list[Gate]) -> None:
        for i, gate in enumerate(gates):
            self.expression((*loc, i, "when"), gate.when)

    def with_(
        self,
        loc: Loc,
        action: str,
        given: dict[str, Any],
        extra: Mapping[str, str] | None = None,
    ) -> None:
        spec = ACTIONS.get(action)
        if spec is not None:
            for where, message in param_problems(spec.params, given):
                self.out.append(((*loc, *where), f"{action}: {message}"))
        self._values(loc, given, extra)

    def _values(self, loc: Loc, value: Any, extra: Mapping[str, str] | None) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                self._values((*loc, k), v, extra)
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                self._values((*loc, i), v, extra)
        elif isinstance(value, str):
            self.template(loc, value, extra)

    def template(self, loc: Loc, source: str, extra: Mapping[str, str] | None = None) -> None:
        for source_part in template_sources(source):
            self._report(loc, variable_paths(source_part), extra)

    def expression(self, loc: Loc, expr: str) -> None:
        self._report(loc, expression_paths(expr), None)

    def _report(
        self, loc: Loc, paths: list[tuple[str, ...]], extra: Mapping[str, str] | None
    ) -> None:
        problems = check_paths(paths, steps=self.steps, params=self.params, extra=extra)
        self.out.extend((loc, p) for p in problems)
