"""Property: `sentinel replay` on a mutated CSV or JSONL recording exits 0 with its
findings or 2 with FILE[:LINE]: message; never a traceback, never a hang."""

from __future__ import annotations

import contextlib
import io
import json
import re
import tempfile
from pathlib import Path

from fuzz_mutations import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from sentinel.cli import main

TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"
SEED_RECORDS = [
    line
    for name in ("errors_xid.jsonl", "thermal_heat.jsonl", "accuracy_drop.jsonl")
    for line in (TRACES / name).read_text(encoding="utf-8").splitlines()[:40]
]
REPLAY_PROBLEM = re.compile(r"^sentinel replay: [^\n:]+(:\d+)?: \S")
HOSTILE_JSON = [
    "Infinity",
    "-Infinity",
    "NaN",
    "1e308",
    "1e400",
    "-1e308",
    "null",
    "true",
    '"soon"',
    '""',
    "[]",
    "{}",
    "-1",
    "0",
    "1763000000000",
    "1" + "0" * 400,
    "9" * 5000,
    "[" * 3000 + "]" * 3000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    '["x", 1, null]',
    '{"max_abs_error": "x"}',
]
HOSTILE_CELLS = [
    "inf",
    "-inf",
    "nan",
    "1e308",
    "1e400",
    "1" + "0" * 400,
    "1763000000000",
    "0",
    "-62135596800",
    "253402300799",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59",
    "2025-11-13T00:00:00Z",
    "2025-11-13T00:00:00+05:30",
    "2025-02-30T00:00:00",
    "",
    '"1"',
    "x",
]
json_values = st.sampled_from(HOSTILE_JSON) | st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
).map(lambda v: json.dumps(v))


@st.composite
def recordings(draw: st.DrawFn) -> str:
    """A slice of real recordings with some fields of some lines made hostile."""
    start = draw(st.integers(0, len(SEED_RECORDS) - 1))
    lines = SEED_RECORDS[start : start + draw(st.integers(1, 40))]
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        try:
            record = json.loads(lines[i])
        except (ValueError, RecursionError):
            record = None  # mutated already
        if not isinstance(record, dict) or not record:
            lines.insert(i, lines[i])
            continue
        how = draw(st.sampled_from(["value", "value", "drop", "garbage", "double"]))
        field = draw(st.sampled_from(sorted(record)))
        if how == "value":
            # splice raw text, so Infinity, NaN and huge integers arrive as written
            rest = json.dumps({k: v for k, v in record.items() if k != field})
            lines[i] = rest[:-1] + f', "{field}": {draw(json_values)}}}'
        elif how == "drop":
            lines[i] = json.dumps({k: v for k, v in record.items() if k != field})
        elif how == "garbage":
            lines[i] = draw(st.text(max_size=40) | st.sampled_from(HOSTILE_JSON))
        else:
            lines.insert(i, lines[i])
    return "\n".join(lines) + "\n"


@st.composite
def csv_series(draw: st.DrawFn) -> str:
    """A timestamp,value CSV of plausible and hostile cells."""
    ts = st.sampled_from(HOSTILE_CELLS) | st.floats(-1e12, 1e12).map(repr) | st.text(max_size=8)
    value = st.sampled_from(HOSTILE_CELLS) | st.floats().map(repr)
    start = 1_763_000_000
    rows = [f"{start + 5 * i},{0.02 + 0.001 * (i % 3)}" for i in range(draw(st.integers(0, 30)))]
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(rows)))
        rows.insert(at, f"{draw(ts)},{draw(value)}")
    header = draw(st.sampled_from(["timestamp,value", "timestamp,value", "ts,v", ""]))
    return "\n".join([header, *rows]) + "\n"


def _replay(text: str, suffix: str, *args: str) -> tuple[int, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["replay", str(path), "--json", *args])
    return code, err.getvalue().splitlines()


def _assert_honest(code: int, lines: list[str]) -> None:
    assert code in (0, 2)
    if code == 2:
        assert lines, "exit 2 says why"
        assert REPLAY_PROBLEM.match(lines[-1]), lines[-1]
    for line in lines:
        assert line.startswith("sentinel replay: "), line


@fuzz_settings(150)
@given(recordings())
def test_mutated_recording_gets_a_clear_answer(text: str) -> None:
    """A recording with hostile fields is replayed or refused as FILE:LINE, exit 2."""
    _assert_honest(*_replay(text, ".jsonl"))


@fuzz_settings(150)
@given(csv_series(), st.sampled_from(["latency", "memory", "errors", "thermal", "generic"]))
def test_mutated_csv_gets_a_clear_answer(text: str, detector: str) -> None:
    """A CSV with hostile cells is replayed or refused as FILE:LINE, exit 2."""
    _assert_honest(*_replay(text, ".csv", "--detector", detector))
