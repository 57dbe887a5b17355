"""Playbook templates and conditions, in Jinja2's immutable sandbox.

Templates see only the data handed to them (incident, subject, evidence,
GPU facts, earlier steps' outputs); the sandbox refuses attribute tricks
(``__class__``, ``mro``...) and mutation, and StrictUndefined turns a typo into
an error instead of an empty string. A string that is exactly one
``{{ expression }}`` renders to the expression's native value (an int stays
an int), so ``max_batch_size: "{{ config.max_batch_size // 2 }}"`` works.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sentinel.runbook.errors import RunbookError

_SINGLE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.DOTALL)


class TemplateFailure(RunbookError):
    """A template or condition could not be rendered; the message says which and why."""


def _has_bit(value: Any, bit: int) -> bool:
    """True when an integer bitmask (e.g. clock_event_reasons) has ``bit`` set."""
    return isinstance(value, int) and bool(value & bit)


def _make_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["has_bit"] = _has_bit
    env.tests["has_bit"] = _has_bit
    return env


_ENV = _make_env()


@functools.lru_cache(maxsize=1024)
def _expression(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


@functools.lru_cache(maxsize=1024)
def _template(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def _single_expression(text: str) -> str | None:
    m = _SINGLE.match(text)
    if m and "{{" not in m.group(1) and "}}" not in m.group(1):
        return m.group(1)
    return None


def evaluate(expr: str, context: Mapping[str, Any]) -> Any:
    """Evaluate one expression (an ``if:`` or ``when:``) in the sandbox."""
    try:
        value = _expression(expr)(**context)
    except jinja2.TemplateError as exc:
        raise TemplateFailure(f"{expr!r}: {_describe(exc)}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateFailure(f"{expr!r}: {type(exc).__name__}: {exc}") from exc
    if isinstance(value, jinja2.Undefined):
        raise TemplateFailure(f"{expr!r}: undefined")
    return value


def condition(expr: str, context: Mapping[str, Any]) -> bool:
    """An ``if:``/``when:``/``blocked_if`` condition, as a bool."""
    return bool(evaluate(expr, context))


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside ``value`` (dicts and lists recursively)."""
    if isinstance(value, str):
        single = _single_expression(value)
        if single is not None:
            return evaluate(single, context)
        if "{{" not in value and "{%" not in value:
            return value
        try:
            return _template(value).render(**context)
        except jinja2.TemplateError as exc:
            raise TemplateFailure(f"{value!r}: {_describe(exc)}") from exc
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            raise TemplateFailure(f"{value!r}: {type(exc).__name__}: {exc}") from exc
    if isinstance(value, Mapping):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, context) for v in value]
    return value


def _describe(exc: jinja2.TemplateError) -> str:
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"refused by the sandbox: {exc}"
    return f"{type(exc).__name__}: {exc.message or exc}"


def check_expression(expr: str) -> str | None:
    """Syntax check of a condition; the problem, or None."""
    try:
        _expression(expr)
    except jinja2.TemplateSyntaxError as exc:
        return f"bad expression: {exc.message}"
    return None


def check_templates(value: Any, where: str = "") -> list[str]:
    """Syntax check of every template string inside ``value``."""
    out: list[str] = []
    if isinstance(value, str):
        single = _single_expression(value)
        try:
            if single is not None:
                _expression(single)
            else:
                _template(value)
        except jinja2.TemplateSyntaxError as exc:
            out.append(f"{where or 'template'}: bad template {value!r}: {exc.message}")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            out += check_templates(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            out += check_templates(v, f"{where}[{i}]")
    return out


INDEX = "[]"
"""A path part read by a computed or numeric index (``gpus[0]``, ``steps[name]``)."""
METHODS = frozenset({"get", "items", "keys", "values"})
"""Mapping methods a template may call on any mapping."""


def variable_paths(value: str) -> list[tuple[str, ...]]:
    """The context paths a template (or one expression string) reads: ``target.model``
    -> ("target", "model"). Names a template binds itself (``{% set %}``, loops) are
    left out; a template that does not parse reads nothing (``check_templates`` says why)."""
    single = _single_expression(value)
    source = "{{ " + single + " }}" if single is not None else value
    try:
        tree = _ENV.parse(source)
    except jinja2.TemplateSyntaxError:
        return []
    free = meta.find_undeclared_variables(tree)
    out: list[tuple[str, ...]] = []
    _walk(tree, free, out)
    return out


def expression_paths(expr: str) -> list[tuple[str, ...]]:
    """The context paths one condition (``if:``, ``when:``) reads."""
    return variable_paths("{{ " + expr + " }}")


def _walk(node: nodes.Node, free: set[str], out: list[tuple[str, ...]]) -> None:
    chain, inner = _chain(node)
    if chain is not None:
        if chain[0] in free and chain not in out:
            out.append(chain)
        for sub in inner:
            _walk(sub, free, out)
        return
    for child in node.iter_child_nodes():
        _walk(child, free, out)


def _chain(node: nodes.Node) -> tuple[tuple[str, ...] | None, list[nodes.Node]]:
    """``a.b['c'][i]`` as ("a", "b", "c", INDEX) plus the index expressions inside it."""
    parts: list[str] = []
    inner: list[nodes.Node] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem):
            arg = node.arg
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                parts.append(arg.value)
            else:
                parts.append(INDEX)
                inner.append(arg)
            node = node.node
        elif isinstance(node, nodes.Name):
            return (node.name, *reversed(parts)), inner
        else:
            return None, []
