"""JSON from untrusted peers, bounded; JSON to peers, standard.

``json.loads`` accepts ``NaN`` and ``Infinity``, turns ``1e400`` into ``inf`` and
raises ``RecursionError`` (not ``ValueError``) on deep nesting, so one hostile
body becomes a 500 or a crash loop. :func:`loads` refuses all of these with a
:class:`JsonRefused` (a ``ValueError``) saying why. :func:`dumps` never writes the
non-standard ``NaN``/``Infinity`` tokens.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sentinel.base.errors import InputError

__all__ = ["DEFAULT_MAX_DEPTH", "JsonRefused", "JsonTooLarge", "depth_of", "dumps", "loads"]

DEFAULT_MAX_DEPTH = 32
"""Nesting no protocol sentinel speaks comes close to (each ``[``/``{`` is one level)."""


class JsonRefused(InputError, ValueError):
    """A JSON text that is malformed, too large, too deep or holds a non-finite number."""


class JsonTooLarge(JsonRefused):
    """A JSON text over its byte or nesting bound (hostile, or not what was asked for)."""


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"number {text[:40]} is out of range")
    return value


def depth_of(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0); no recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def loads(
    text: str | bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int | None = None,
    allow_nan: bool = False,
) -> Any:
    """The value of ``text``; JsonRefused if it is not finite, bounded, standard JSON.

    ``allow_nan`` keeps the bounds but reads NaN/Infinity as Python does (a tensor's
    values may be non-finite: that is a finding, not garbage).
    """
    if max_bytes is not None and len(text) > max_bytes:
        raise JsonTooLarge(f"JSON text of {len(text)} bytes is over the {max_bytes}-byte limit")
    try:
        if allow_nan:
            value = json.loads(text)
        else:
            value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JsonRefused:
        raise
    except RecursionError:
        raise JsonTooLarge(f"JSON nested deeper than {max_depth} levels") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, bad UTF-8, huge integers
        raise JsonRefused(f"not valid JSON: {exc}") from None
    if depth_of(value) > max_depth:
        raise JsonTooLarge(f"JSON nested deeper than {max_depth} levels")
    return value


def _finite(value: Any) -> Any:
    """``value`` with each non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Standard JSON (non-finite floats become null, other objects their ``str``)."""
    try:
        return json.dumps(value, default=str, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere: rare, so only then walk it
        return json.dumps(_finite(value), default=str, allow_nan=False)
