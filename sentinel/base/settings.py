"""Building blocks shared by every config section."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    SecretStr,
    ValidationInfo,
    field_validator,
)


class Section(BaseModel):
    """A config section: unknown keys are errors, values are immutable, numbers are
    finite (an infinite timeout or interval is refused) and never true/false."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads true as 1: `api.port: true` would listen on port 1."""
        if isinstance(value, bool) and info.field_name is not None:
            hint = cls.model_fields[info.field_name].annotation
            if _is_number(hint):
                raise ValueError("expected a number, not true/false")
        return value


def _is_number(hint: Any) -> bool:
    """int or float (or either or None), but not a type that also takes a bool."""
    if hint in (int, float):
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return bool(args) and all(a in (int, float) for a in args)
    return False


def resolve_path(path: Path, info: ValidationInfo) -> Path:
    """Relative paths in a config file are relative to that file's folder."""
    base = (info.context or {}).get("base_dir")
    if base is not None and not path.is_absolute():
        return (Path(base) / path).resolve()
    return path


RelPath = Annotated[Path, AfterValidator(resolve_path)]
"""A path, resolved against the folder of the config file that names it."""


def read_secret(value: SecretStr | None, file: Path | None) -> str | None:
    """A secret given inline (usually via env) or in a file; the file wins."""
    if file is not None:
        return file.read_text(encoding="utf-8").strip()
    return value.get_secret_value() if value is not None else None
