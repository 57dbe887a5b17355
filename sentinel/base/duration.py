"""One duration grammar for every config field, playbook and command-line flag.

A duration is a number of seconds, or text: a plain number (``"90"``, seconds) or one or
more ``NUMBER UNIT`` parts, units ``ms``, ``s``, ``m``, ``h``, ``d`` -- ``500ms``,
``1.5s``, ``90s``, ``2m``, ``1h30m``, ``1d12h``. :data:`Duration` is the pydantic type
(seconds as a float); :func:`parse_duration` the same rule for plain code.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"\d+(?:\.\d+)?"
_PART = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)")
PATTERN = rf"^\s*(?:{_NUMBER}|(?:{_NUMBER}\s*(?:ms|s|m|h|d)\s*)+)\s*$"
"""The text form, as a regular expression (also in the JSON Schemas)."""
_WHOLE = re.compile(PATTERN)
_FLOAT = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$")
EXAMPLES = "e.g. 90s, 1h30m, 500ms, or a number of seconds"


def parse_duration(value: Any) -> float:
    """Seconds from a number or a duration text; ValueError (saying the accepted forms)
    for anything else, true/false, NaN and infinity included."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration ({EXAMPLES}), not true/false")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _WHOLE.match(value):
        text = value.strip()
        parts = _PART.findall(text)
        seconds = sum(float(n) * UNITS[u] for n, u in parts) if parts else float(text)
    elif isinstance(value, str) and _FLOAT.match(value):
        seconds = float(value)  # any other number of seconds a float field took: 1e3, .5, -1
    else:
        raise ValueError(f"{value!r} is not a duration ({EXAMPLES})")
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest text :func:`parse_duration` reads back as ``seconds`` (``5400`` ->
    ``1h30m``), for messages."""
    if seconds < 1 or seconds != int(seconds):
        return f"{seconds:g}s"
    out, rest = "", int(seconds)
    for unit in ("d", "h", "m", "s"):
        size = int(UNITS[unit])
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"


def _validate(value: Any) -> float:
    """:func:`parse_duration` for pydantic, its message without a "Value error," prefix
    (a config problem reads ``FILE:LINE: field: '2x' is not a duration (...)``)."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None


_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string", "pattern": PATTERN}, {"type": "number", "minimum": 0}],
    "description": "seconds, or 500ms / 30s / 5m / 1h30m / 2d",
}

Duration = Annotated[float, BeforeValidator(_validate), Field(ge=0), WithJsonSchema(_JSON_SCHEMA)]
"""Seconds (never negative); written as a number or as 90s / 1h30m / 500ms."""
