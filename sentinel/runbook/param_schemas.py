"""Each action's ``with:`` in the playbook JSON Schema, so an editor flags a wrong
parameter as ``validate`` does. A value may also be a template (rendered at run time), so
every parameter accepts a string holding ``{{``/``{%`` besides its own type."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from sentinel.runbook.actions import ACTIONS
from sentinel.runbook.actions.base import ActionParams

_TEMPLATE: dict[str, Any] = {"type": "string", "pattern": r"\{\{|\{%"}


def with_schemas() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """({action name: schema of its with:}, the $defs those schemas refer to)."""
    models: list[type[ActionParams]] = list(dict.fromkeys(s.params for s in ACTIONS.values()))
    refs, top = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/$defs/{model}"
    )
    defs: dict[str, Any] = top.get("$defs", {})
    for definition in defs.values():
        props = definition.get("properties", {})
        for name, prop in props.items():
            props[name] = {"anyOf": [prop, _TEMPLATE]}
    by_action = {name: dict(refs[(spec.params, "validation")]) for name, spec in ACTIONS.items()}
    return by_action, defs


def conditionals(by_action: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``allOf`` entries: if ``action`` is X then ``with`` follows X's schema."""
    return [
        {
            "if": {"properties": {"action": {"const": name}}, "required": ["action"]},
            "then": {"properties": {"with": ref}},
        }
        for name, ref in sorted(by_action.items())
    ]
