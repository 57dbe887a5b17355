"""Load YAML with line numbers, validate it with pydantic, and report problems
as ``FILE:LINE: dotted.field: message`` -- the one error format of every
sentinel file (config, playbooks).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from sentinel.base.errors import InputError

M = TypeVar("M", bound=pydantic.BaseModel)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class InvalidFile(InputError):
    """A file failed to load or validate; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        lines[key] = (key_node.start_mark.line + 1, value_node.start_mark.line + 1)
    mapping_with_lines = _Mapping(mapping)
    mapping_with_lines.lines = lines
    mapping_with_lines.line = node.start_mark.line + 1
    return mapping_with_lines


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> list[Any]:
    seq = _Sequence(loader.construct_sequence(node, deep=True))
    seq.lines = [item.start_mark.line + 1 for item in node.value]
    seq.line = node.start_mark.line + 1
    return seq


class _Mapping(dict[Any, Any]):
    lines: dict[Any, tuple[int, int]]
    line: int


class _Sequence(list[Any]):
    lines: list[int]
    line: int


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(text: str, filename: str) -> Any:
    """Parse YAML safely; a syntax error becomes :class:`InvalidFile` with its line."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise InvalidFile([Problem(filename, line, "", f"invalid YAML: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise InvalidFile([Problem(filename, 1, "", f"invalid YAML: {exc}")]) from exc


def line_of(data: Any, loc: tuple[int | str, ...]) -> int:
    """The line of the deepest part of ``loc`` found in the loaded data."""
    line = getattr(data, "line", 1)
    node = data
    for part in loc:
        if isinstance(node, _Mapping) and part in node:
            line = node.lines[part][0]
            node = node[part]
        elif isinstance(node, _Sequence) and isinstance(part, int) and part < len(node):
            line = node.lines[part]
            node = node[part]
        else:
            break
    return line


def plain(data: Any) -> Any:
    """Strip the line bookkeeping: plain dicts and lists."""
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data


def _known_fields(model: type[pydantic.BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names (and aliases) of the model that owns the last element of loc."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        current = _inner_model(ann)
        if current is None:
            return []
    fields = getattr(current, "model_fields", {})
    return [f.alias or name for name, f in fields.items()]


def _inner_model(ann: Any) -> Any:
    import typing

    if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
        return ann
    for arg in typing.get_args(ann):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def problems_from(
    error: pydantic.ValidationError, data: Any, filename: str, model: type[pydantic.BaseModel]
) -> list[Problem]:
    """Turn pydantic's errors into file/line/field problems, with 'did you mean'.

    A top-level key the model lists in a ``REMOVED_KEYS`` class attribute (key -> what
    to do instead) gets that advice rather than 'unknown key'.
    """
    out = []
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        dotted = ".".join(str(p) for p in loc)
        message = err["msg"]
        removed: dict[str, str] = getattr(model, "REMOVED_KEYS", {})
        if err["type"] == "extra_forbidden" and len(loc) == 1 and str(loc[0]) in removed:
            message = f"no longer a setting: {removed[str(loc[0])]}"
        elif err["type"] == "extra_forbidden" and loc:
            message = "unknown key"
            close = difflib.get_close_matches(str(loc[-1]), _known_fields(model, loc), n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
        elif err["type"] == "missing":
            message = "required field is missing"
        out.append(Problem(filename, line_of(data, loc), dotted, message))
    return out


def validate(model: type[M], data: Any, filename: str) -> M:
    """Validate loaded YAML against a model, raising :class:`InvalidFile` on problems."""
    try:
        return model.model_validate(plain(data))
    except pydantic.ValidationError as exc:
        raise InvalidFile(problems_from(exc, data, filename, model)) from exc


def load_file(model: type[M], path: str | Path) -> M:
    """Read, parse and validate one YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidFile([Problem(str(p), 0, "", f"cannot read: {exc.strerror or exc}")]) from exc
    data = load_yaml(text, str(p))
    if data is None:
        data = {}
    return validate(model, data, str(p))
