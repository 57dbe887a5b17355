"""What playbook templates may name, read from the code that builds the context.

The field lists come from running :func:`build_context` on a synthetic incident, so a
field added there is known here (and must get a line in :data:`DOCS`: a test checks).
``validate`` checks every template's variables against this, with "did you mean".
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sentinel.runbook.context import build_context, synthetic_incident
from sentinel.runbook.templating import INDEX, METHODS

TARGET_FIELDS: dict[str, str] = {
    "model": "the model the run acts on: the incident's, else -- for a server- or GPU-wide "
    "incident -- the one model this sidecar serves; '' when neither names one",
    "version": "the incident's model version (absent when it names none: test with "
    "`target.version is defined`)",
}
STEP_FIELDS: dict[str, str] = {
    "status": "succeeded, failed, skipped, blocked, rolled_back or planned",
    "output": "what the action returned (see each action)",
    "verified": "true / false / none (no verify:)",
}
CAUSE_FIELDS: dict[str, str] = {
    "foreign_memory": "a process that is not the server holds memory on the GPU (now, or "
    "when the finding fired)",
    "foreign_memory_bytes": "how much (the larger of then and now)",
    "foreign_processes": "those processes (pid, name, used_bytes)",
    "hardware_thermal": "the GPU is (or was) slowed by HW thermal slowdown or HW slowdown",
    "hardware_power": "the GPU is (or was) slowed by the HW power brake",
    "hardware_throttle": "the GPU is (or was) slowed by hardware: HW slowdown, HW thermal "
    "slowdown, HW power brake",
    "reasons": "the clock event reasons' names, from the evidence or the GPU now",
}
DOCS: dict[str, str] = {
    "cause": "what the evidence says caused the incident (for cause-aware guards)",
    "incident": "the incident",
    "subject": "what the incident is about (unset parts are none)",
    "evidence": "the latest finding's evidence (window stats, baseline, threshold...)",
    "target": "what the run acts on",
    "params": "the playbook's params, merged with a manual run's --param (strings)",
    "gpus": "every GPU (items as `gpu`)",
    "gpu": "the incident's GPU (or the first); every NVML field plus derived facts",
    "triton": "the latest server health sample",
    "config": "the model config Triton serves now (read at run start; {} if unreadable)",
    "steps": "earlier steps by name: steps.NAME.status / .output / .verified",
    "now": "wall time, epoch seconds",
    "dry_run": "whether this run is a plan only",
}
ROLLBACK_ONLY: dict[str, str] = {"output": "the step's own output (in rollback: only)"}
OPEN = frozenset({"evidence", "config"})
"""Mappings whose keys depend on the detector or the model: not checked."""


@dataclass(frozen=True, slots=True)
class Variable:
    """One top-level name a template may use."""

    name: str
    doc: str
    fields: Mapping[str, str] | None
    """Known keys and what they are; None: any key (not checked)."""
    is_list: bool = False
    """A list whose items have ``fields``."""


@functools.cache
def variables() -> dict[str, Variable]:
    """Every top-level template name, with its fields, from a context built by the code."""
    incident = synthetic_incident("pod", {"model": "m"}, "manual", 0.0)
    sample = build_context(
        incident=incident,
        target={},
        params={},
        facts=None,
        server_names=[],
        config={},
        now=0.0,
        dry_run=True,
    )
    gpu_fields = dict.fromkeys(sample["gpu"], "")
    out: dict[str, Variable] = {}
    for name, value in sample.items():
        doc = DOCS.get(name, "")
        fields: Mapping[str, str] | None = None
        if name == "cause":
            fields = {k: CAUSE_FIELDS.get(k, "") for k in value}
        elif name == "target":
            fields = TARGET_FIELDS
        elif name == "gpus":
            out[name] = Variable(name, doc, gpu_fields, is_list=True)
            continue
        elif name not in OPEN and name not in ("params", "steps") and isinstance(value, dict):
            fields = dict.fromkeys(value, "")
        elif not isinstance(value, dict):
            fields = {}
        out[name] = Variable(name, doc, fields)
    return out


def check_paths(
    paths: Sequence[tuple[str, ...]],
    *,
    steps: Sequence[str],
    params: Sequence[str],
    extra: Mapping[str, str] | None = None,
) -> list[str]:
    """Problems with the variables a template reads (see ``templating.variable_paths``).

    ``steps`` and ``params`` are the names the playbook declares; ``extra`` names more
    top-level variables (e.g. a rollback's ``output``), not checked further.
    """
    known = variables()
    extra = extra or {}
    out: list[str] = []
    for path in paths:
        root, rest = path[0], path[1:]
        if root in extra:
            continue
        if root not in known:
            out.append(f"unknown variable {root!r}" + _did_you_mean(root, [*known, *extra]))
            continue
        problem = _check(known[root], rest, steps, params)
        if problem and problem not in out:
            out.append(problem)
    return out


def _check(
    var: Variable, rest: tuple[str, ...], steps: Sequence[str], params: Sequence[str]
) -> str | None:
    if not rest or rest[0] in METHODS:
        return None
    first, name = rest[0], var.name
    if name == "steps":
        if first != INDEX and first not in steps:
            return f"steps.{first}: no step of that name" + _did_you_mean(first, steps)
        if len(rest) > 1 and rest[1] not in STEP_FIELDS and rest[1] not in METHODS:
            hint = _did_you_mean(rest[1], list(STEP_FIELDS)) or " (" + ", ".join(STEP_FIELDS) + ")"
            return f"steps.{first}.{rest[1]}: a step has no such field" + hint
        return None
    if name == "params":
        if first != INDEX and first not in params:
            return f"params.{first}: not declared under params:" + _did_you_mean(first, params)
        return None
    if var.is_list:
        if first != INDEX:
            return f"{name} is a list: use {name}[0].FIELD"
        rest = rest[1:]
        if not rest:
            return None
        first = rest[0]
    if var.fields is None or first in METHODS:
        return None
    if first not in var.fields:
        if not var.fields:
            return f"{name} has no fields ({name}.{first})"
        return f"{name}.{first}: no such field" + _did_you_mean(first, list(var.fields))
    return None


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(name, what, [(field, what)]) for every template variable, for the docs."""
    rows: list[tuple[str, str, list[tuple[str, str]]]] = []
    for var in variables().values():
        fields: Mapping[str, str] = var.fields or {}
        if var.name == "steps":
            fields = STEP_FIELDS
        rows.append((var.name, var.doc, list(fields.items())))
    for name, doc in ROLLBACK_ONLY.items():
        rows.append((name, doc, []))
    return rows


def template_sources(value: Any) -> list[str]:
    """Every string inside ``value`` (dicts and lists recursively)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in template_sources(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in template_sources(v)]
    return []
