"""`sentinel replay` on hostile recordings: FILE:LINE: message and exit 2, never a hang
or a traceback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sentinel.cli import main
from sentinel.detect.backtest import run
from sentinel.detect.settings import DetectorSettings
from sentinel.detect.suite import DetectorSuite
from sentinel.probes.recording import MAX_LINE_CHARS
from sentinel.vocabulary.findings import Judgement
from sentinel.vocabulary.samples import TritonHealth

GOOD = {"type": "triton", "ts": 1_763_000_000.0, "live": True, "ready": True}


def _replay(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    started = time.monotonic()
    code = main(["replay", str(path), *extra])
    assert time.monotonic() - started < 30.0, "replay must not hang"
    return code, capsys.readouterr().err


def _recording(tmp_path: Path, second_line: str) -> Path:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + second_line + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("ts", "why"),
    [
        ("Infinity", "is not epoch seconds"),
        ("NaN", "is not epoch seconds"),
        ("1e308", "is not epoch seconds"),
        ("1e400", "is not epoch seconds"),
        ("1763000001000", "milliseconds?"),
        ("null", "ts: required, got null"),
        ('"soon"', "ts: expected a number"),
        ("1" + "0" * 400, "ts: int too large to convert to float"),
        ("1" + "0" * 5000, "Exceeds the limit"),
    ],
)
def test_bad_timestamp_is_named_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ts: str, why: str
) -> None:
    """A timestamp that is not a time is FILE:2: ts: ..., exit 2 (it once looped forever
    or raised a traceback)."""
    path = _recording(tmp_path, '{"type":"triton","ts":' + ts + ',"live":true,"ready":true}')
    code, err = _replay(path, capsys)
    assert 2 == code
    assert f"{path}:2: " in err
    assert why in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('{"type":"triton","ts":1763000001,"live":"yes","ready":true}', "live: expected true"),
        ('{"type":"gpu","ts":1763000001,"index":0,"uuid":"G","processes":"x"}', "processes"),
        ('{"type":"gpu_event","ts":1763000001,"uuid":"G","kind":"fire"}', "kind: expected one"),
        (
            '{"type":"triton","ts":1763000001,"live":true,"ready":true,'
            '"failures_by_reason":{"oom":"many"}}',
            "failures_by_reason",
        ),
        (
            '{"type":"triton","ts":1763000001,"live":true,"ready":true,"x":'
            + "[" * 100_000
            + "]" * 100_000
            + "}",
            "nested too deeply",
        ),
        ("[" * 100_000, "nested too deeply"),
    ],
)
def test_bad_field_is_named_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, why: str
) -> None:
    """A value of the wrong shape or deep nesting is FILE:2: message, exit 2."""
    code, err = _replay(_recording(tmp_path, line), capsys)
    assert 2 == code
    assert why in err
    assert "Traceback" not in err


def test_overlong_line_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A line past the length limit is a bad line, read without holding all of it."""
    code, err = _replay(_recording(tmp_path, "x" * (MAX_LINE_CHARS + 10)), capsys)
    assert 2 == code
    assert f":2: line longer than {MAX_LINE_CHARS} characters" in err


def test_overlong_csv_line_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CSV line past the length limit is FILE:LINE, exit 2."""
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n1763000000," + "1" * (MAX_LINE_CHARS + 10) + "\n")
    code, err = _replay(path, capsys, "--detector", "latency")
    assert 2 == code
    assert f"{path}:2: line longer than" in err


def test_csv_gap_of_millennia_finishes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two CSV rows 9,000 years apart replay in bounded time (once 3e10 ticks)."""
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n0001-01-02T00:00:00,0.1\n9999-12-30T00:00:00,0.1\n")
    code, err = _replay(path, capsys, "--detector", "latency")
    assert (0, "") == (code, err)


def test_backtest_bounds_ticks_across_a_gap() -> None:
    """run() ticks at most a bounded number of times across one long gap and still
    ticks just before the next sample."""
    ticks: list[float] = []

    class Counting(DetectorSuite):
        def tick(self, now: float) -> list[Judgement]:
            ticks.append(now)
            return super().tick(now)

    judge = Counting(DetectorSettings())
    samples = [
        TritonHealth(ts=0.0, live=True, ready=True),
        TritonHealth(ts=1e11, live=True, ready=True),
    ]
    run(judge, samples, tick_s=10.0)
    assert len(ticks) <= 1001
    assert 1e11 - 10.0 <= ticks[-1] <= 1e11
