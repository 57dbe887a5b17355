"""The test suite's own layout rules: shared code goes through importable helpers."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_no_test_imports_a_conftest() -> None:
    """`from conftest import` resolves to whichever conftest was imported first, so a
    test run with another folder breaks; shared names live in a uniquely named module."""
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if re.search(r"^\s*(from conftest import|import conftest)", path.read_text(), re.M)
    ]
    assert [] == offenders


def test_test_file_names_are_unique() -> None:
    """Without __init__.py files, two test modules of one name cannot both be collected."""
    names = [p.name for p in TESTS.rglob("test_*.py")]
    assert [] == sorted({n for n in names if names.count(n) > 1})
