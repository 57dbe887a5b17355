"""Property: `sentinel playbook validate` on a mutated shipped playbook answers ok
(exit 0) or FILE[:LINE]: problems (exit 2); never a traceback, never a hang."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from fuzz_mutations import PROBLEM, fuzz_settings, mutated_text
from hypothesis import given
from hypothesis import strategies as st

from sentinel.cli import main

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
SEEDS = [p.read_text(encoding="utf-8") for p in sorted(PLAYBOOKS.glob("*.yaml"))]


def _validate(text: str | bytes) -> tuple[int, list[str], str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "playbook.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(["playbook", "validate", str(path)])
    return code, err.getvalue().splitlines(), str(path)


def _assert_honest(code: int, lines: list[str], path: str) -> None:
    assert code in (0, 2)
    if code == 0:
        assert [] == lines
        return
    assert lines, "exit 2 says why"
    for line in lines:
        assert PROBLEM.match(line), line
        assert line.startswith(path), line


def test_shipped_playbooks_are_the_seeds() -> None:
    """Every shipped playbook validates, so mutations are the news."""
    assert SEEDS
    assert [0] * len(SEEDS) == [_validate(seed)[0] for seed in SEEDS]


@fuzz_settings(150)
@given(st.sampled_from(SEEDS).flatmap(mutated_text))
def test_mutated_playbook_gets_a_clear_answer(text: str) -> None:
    """A mutated playbook is ok or FILE[:LINE]: problems with exit 2, never an exception."""
    _assert_honest(*_validate(text))


@fuzz_settings(100)
@given(st.sampled_from(SEEDS), st.binary(max_size=100))
def test_playbook_with_junk_bytes_gets_a_clear_answer(seed: str, junk: bytes) -> None:
    """Arbitrary bytes (non-UTF-8 included) after a valid start: a clear answer."""
    _assert_honest(*_validate(seed.encode()[:200] + junk))
