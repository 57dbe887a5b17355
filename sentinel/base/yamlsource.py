"""Load YAML with line numbers, validate it with pydantic, and report problems
as ``FILE:LINE: dotted.field: message`` -- the one error format of every
sentinel file (config, playbooks).

Input is bounded before it can cost much: at most :data:`MAX_YAML_BYTES`, nesting
at most :data:`MAX_DEPTH` deep, at most :data:`MAX_ALIASES` aliases and
:data:`MAX_NODES` values once aliases are expanded (a kilobyte "alias bomb" expands
to billions). A key given twice in one mapping is refused rather than silently
taking the last value. Booleans are YAML 1.2's (``true``/``false``): a bare
``off``, ``no`` or ``on`` stays a string, which bool settings still accept.
"""

from __future__ import annotations

import difflib
import re
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
    line: int | None
    """None: the problem is the whole file (unreadable, not UTF-8, too large)."""
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class InvalidFile(InputError):
    """A file failed to load or validate; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


MAX_YAML_BYTES = 1 << 20
"""Largest YAML file read (1 MiB): configs and playbooks are a few kilobytes."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists (past a few hundred, Python's stack ends)."""
MAX_ALIASES = 64
"""Most aliases (``*name``) in one file."""
MAX_NODES = 20_000
"""Most values in one file, counting each alias as a copy of what it names (a large
config has a few thousand; parsing 20,000 takes about a second)."""


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that sentinel will not load (too deep, too many aliases, a key twice)."""


def _refuse(message: str, mark: yaml.Mark | None) -> _Refused:
    return _Refused(problem=message, problem_mark=mark)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item, and
    bounds nesting and aliases while it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _refuse(f"more than {MAX_ALIASES} aliases", mark)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _refuse(f"more than {MAX_NODES} values", mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _refuse(f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value PyYAML cannot build (a 30th of February) is a problem at its line."""
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            raise _refuse(f"invalid value: {exc}", node.start_mark) from exc


# YAML 1.2 booleans: only true/false (any case). YAML 1.1 also reads on/off/yes/no as
# booleans, so `gpu.source: off` would arrive as False.
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _expanded_check(root: yaml.Node) -> None:
    """Refuse a node graph whose aliases expand past :data:`MAX_NODES` values or
    :data:`MAX_DEPTH` levels, or refer to themselves; linear in the file's nodes."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, height)
    busy: set[int] = set()

    def walk(node: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in busy:
            raise _refuse("an alias refers to the value that contains it", node.start_mark)
        known = sizes.get(key)
        if known is None:
            if depth > MAX_DEPTH:
                raise _refuse(f"nested deeper than {MAX_DEPTH} levels", node.start_mark)
            busy.add(key)
            values, height = 1, 1
            children: list[yaml.Node] = []
            if isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            for child in children:
                v, h = walk(child, depth + 1)
                values += v
                height = max(height, h + 1)
                if values > MAX_NODES:
                    raise _refuse(
                        f"more than {MAX_NODES} values once aliases are expanded",
                        node.start_mark,
                    )
            busy.discard(key)
            known = sizes[key] = (values, height)
        if depth + known[1] - 1 > MAX_DEPTH:
            raise _refuse(f"nested deeper than {MAX_DEPTH} levels", node.start_mark)
        return known

    walk(root, 1)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *base` keys may be overridden: that is what they are for
        key = loader.construct_object(key_node, deep=True)
        try:
            seen = first_line.get(key)
        except TypeError:
            continue  # unhashable: construct_mapping reports it
        line = key_node.start_mark.line + 1
        if seen is not None:
            raise _refuse(f"key {key!r} given twice (first at line {seen})", key_node.start_mark)
        first_line[key] = line
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


def read_text(path: str | Path) -> str:
    """A YAML file's text: unreadable, larger than :data:`MAX_YAML_BYTES` or not UTF-8
    is :class:`InvalidFile` naming the file."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise InvalidFile([Problem(str(p), 0, "", f"cannot read: {exc.strerror or exc}")]) from exc
    if len(raw) > MAX_YAML_BYTES:
        raise InvalidFile([Problem(str(p), None, "", _too_large())])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFile([Problem(str(p), None, "", "not UTF-8 text")]) from exc


def _too_large() -> str:
    return f"larger than {MAX_YAML_BYTES // 1024} KiB; not a sentinel file"


def load_yaml(text: str, filename: str) -> Any:
    """Parse YAML safely and within bounds; a syntax error, a key given twice or input
    past a limit becomes :class:`InvalidFile` with its line."""
    if len(text) > MAX_YAML_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise InvalidFile([Problem(filename, None, "", _too_large())])
    try:
        return _load_bounded(text)
    except _Refused as exc:
        raise InvalidFile([Problem(filename, _line(exc), "", str(exc.problem))]) from exc
    except yaml.MarkedYAMLError as exc:
        what = exc.problem or exc.context or "not YAML"
        raise InvalidFile([Problem(filename, _line(exc), "", f"invalid YAML: {what}")]) from exc
    except yaml.reader.ReaderError as exc:
        # its str() names "<unicode string>" and a character offset: say the line instead
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        what = f"character {char!r} is not allowed"
        raise InvalidFile([Problem(filename, line, "", f"invalid YAML: {what}")]) from exc
    except yaml.YAMLError as exc:
        raise InvalidFile([Problem(filename, 1, "", f"invalid YAML: {exc}")]) from exc


def _load_bounded(text: str) -> Any:
    loader = _LineLoader(text)  # checks the characters first (ReaderError)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if loader._aliases:
            _expanded_check(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _line(exc: yaml.MarkedYAMLError) -> int:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else 1


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
    data = load_yaml(read_text(p), str(p))
    if data is None:
        data = {}
    return validate(model, data, str(p))
