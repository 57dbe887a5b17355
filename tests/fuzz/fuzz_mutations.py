"""Hypothesis strategies that mutate a seed text the way a clumsy operator or an
attacker would: lines dropped, doubled, re-indented or cut; values swapped for hostile
YAML (aliases, anchors, infinities, bare off, deep nesting, duplicate keys); bytes
flipped."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROBLEM = re.compile(r"^[^\n:]+(:\d+)?: \S")
"""A problem line: FILE: message or FILE:LINE: [field: ]message."""

HOSTILE_VALUES = [
    "true",
    "false",
    "off",
    "yes",
    "~",
    "null",
    ".inf",
    "-.inf",
    ".nan",
    "1e400",
    "-1",
    "0",
    "99999999999999999999999999",
    "1" * 5000,
    "2020-02-30",
    '"x"',
    "''",
    "[]",
    "{}",
    "[1, [2, [3]]]",
    "{a: {b: {c: 1}}}",
    "*nowhere",
    "&anchor 1",
    "!!binary x",
    "!!python/object:os.system x",
    "!!float abc",
    "[" * 80 + "]" * 80,
    "{",
    "]",
    ": :",
    "- - -",
    "'unterminated",
    "x" * 3000,
    "\t1",
    "\x00",
    "é",
    "5m",
    "soon",
]
"""Values that have broken parsers before: types, infinities, YAML 1.1 booleans,
tags, aliases, brackets, control characters."""


@st.composite
def mutated_text(draw: st.DrawFn, seed: str) -> str:
    """The seed text with one to four mutations."""
    lines = seed.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            lines = [""]
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(_MUTATIONS))
        lines = kind(draw, lines, i)
    return "\n".join(lines) + "\n"


def _swap_value(draw: st.DrawFn, lines: list[str], i: int) -> list[str]:
    key, sep, _ = lines[i].partition(":")
    value = draw(st.sampled_from(HOSTILE_VALUES) | st.text(max_size=20))
    lines[i] = f"{key}: {value}" if sep else f"{lines[i]} {value}"
    return lines


def _drop(draw: st.DrawFn, lines: list[str], i: int) -> list[str]:
    return lines[:i] + lines[i + 1 :]


def _double(draw: st.DrawFn, lines: list[str], i: int) -> list[str]:
    return lines[: i + 1] + lines[i:]


def _indent(draw: st.DrawFn, lines: list[str], i: int) -> list[str]:
    shift = draw(st.sampled_from([-4, -2, 1, 2, 4]))
    line = lines[i]
    lines[i] = line[-shift:] if shift < 0 and line[:-shift].isspace() else " " * shift + line
    return lines


def _cut(draw: st.DrawFn, lines: list[str], i: int) -> list[str]:
    line = lines[i]
    at = draw(st.integers(0, len(line)))
    return [*lines[:i], line[:at]]


def _insert(draw: st.DrawFn, lines: list[str], i: int) -> list[str]:
    extra = draw(
        st.sampled_from(
            [
                "api:\n  port: 1",
                "<<: {a: 1}",
                "a: &a [1, *a]",
                "? [1, 2]\n: x",
                "---\nb: 2",
                "%YAML 1.1",
                "x: !!set {a, b}",
            ]
        )
        | st.text(max_size=30)
    )
    return [*lines[:i], *extra.split("\n"), *lines[i:]]


def _flip_char(draw: st.DrawFn, lines: list[str], i: int) -> list[str]:
    line = lines[i]
    if not line:
        return lines
    at = draw(st.integers(0, len(line) - 1))
    char = draw(st.characters(codec="utf-8") | st.sampled_from(list(":-[]{}&*!|>'\"#%@`,?")))
    lines[i] = line[:at] + char + line[at + 1 :]
    return lines


_MUTATIONS: list[Callable[[st.DrawFn, list[str], int], list[str]]] = [
    _swap_value,
    _swap_value,
    _drop,
    _double,
    _indent,
    _cut,
    _insert,
    _flip_char,
]


def fuzz_settings(max_examples: int) -> settings:
    """Bounded, reproducible runs for CI; FUZZ_EXAMPLES=N explores N random
    examples instead (a long local hunt)."""
    hunt = os.environ.get("FUZZ_EXAMPLES")
    return settings(
        max_examples=int(hunt) if hunt else max_examples,
        deadline=timedelta(seconds=10),
        derandomize=not hunt,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
