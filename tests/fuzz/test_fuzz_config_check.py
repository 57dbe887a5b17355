"""Property: `sentinel config check` on a mutated config answers ok (exit 0) or one
problem per line as FILE[:LINE]: message (exit 2); never a traceback, never a hang."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from fuzz_mutations import PROBLEM, fuzz_settings, mutated_text
from hypothesis import given
from hypothesis import strategies as st

from sentinel.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEED = (ROOT / "examples" / "sentinel.yaml").read_text(encoding="utf-8") + (
    "playbooks:\n"
    f"  dirs: [{ROOT / 'playbooks'}]\n"
    "  overrides:\n"
    "    reduce-batch-size:\n"
    "      guards: {cooldown: 5m}\n"
    "      steps:\n"
    "        halve_batch: {restore_after: 2h}\n"
    "    restart-server:\n"
    "      params: {min_uptime_s: '5'}\n"
)
FUZZ = fuzz_settings(100)


def _config_check(text: str | bytes) -> tuple[int, list[str], Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sentinel.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["config", "check", str(path)])
    return code, err.getvalue().splitlines(), path


def _assert_honest(code: int, lines: list[str], path: Path) -> None:
    assert code in (0, 2)
    if code == 0:
        assert [] == lines
        return
    assert lines, "exit 2 says why"
    for line in lines:
        assert PROBLEM.match(line), line
        assert line.startswith((str(path), "env:", "config:")) or ": " in line, line


def test_seed_config_is_ok() -> None:
    """The seed (the shipped example plus overrides) passes, so mutations are the news."""
    assert (0, []) == _config_check(SEED)[:2]


@FUZZ
@given(mutated_text(SEED))
def test_mutated_config_gets_a_clear_answer(text: str) -> None:
    """A mutated config is ok or FILE[:LINE]: problems with exit 2, never an exception."""
    _assert_honest(*_config_check(text))


@FUZZ
@given(st.binary(max_size=200).map(lambda junk: SEED.encode()[:300] + junk))
def test_config_with_junk_bytes_gets_a_clear_answer(text: bytes) -> None:
    """Arbitrary bytes (non-UTF-8 included) after a valid start: a clear answer."""
    _assert_honest(*_config_check(text))
