"""`sentinel replay --detector generic`: any timestamp,value CSV, scores out, bad rows named."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from sentinel.cli import main

T0 = 1_763_000_000


def _series_csv(path: Path, *, iso: bool = False, n: int = 600, jump_at: int = 500) -> Path:
    """Noise around 1000 requests/s every 5 min, with a collapse to 300 at ``jump_at``."""
    values = 1000.0 + np.random.default_rng(1).normal(0.0, 10.0, n)
    values[jump_at:] = 300.0 + np.random.default_rng(2).normal(0.0, 10.0, n - jump_at)
    lines = ["timestamp,value"]
    for i, v in enumerate(values.tolist()):
        ts = T0 + 300 * i
        stamp = datetime.fromtimestamp(ts, UTC).isoformat() if iso else str(ts)
        lines.append(f"{stamp},{v:.3f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_collapse_is_found_with_plain_units(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A throughput drop in a 5-minute series is found at once; the summary has no seconds."""
    path = _series_csv(tmp_path / "rps.csv")
    assert 0 == main(["replay", str(path), "--detector", "generic", "--json"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    drops = [r for r in records if r["detected_at"] == T0 + 300 * 500]
    assert 1 == len(drops)
    assert "drop" == drops[0]["evidence"]["direction"]
    assert 300.0 == drops[0]["evidence"]["interval_s"]
    assert " ms" not in drops[0]["summary"]
    assert " s " not in drops[0]["summary"]


def test_iso_timestamps_are_read_and_written_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ISO-8601 input gives ISO-8601 times in findings and in the scores file."""
    path = _series_csv(tmp_path / "rps.csv", iso=True)
    scores = tmp_path / "scores.csv"
    assert 0 == main(["replay", str(path), "--detector", "generic", "--scores", str(scores)])
    assert "2025-11-14T" in capsys.readouterr().out
    with scores.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert "2025-11-13T02:13:20+00:00" == rows[0]["timestamp"]


def test_scores_has_one_row_per_kept_row(tmp_path: Path) -> None:
    """--scores writes timestamp,value,score for each row; the collapse outscores all before."""
    path = _series_csv(tmp_path / "rps.csv")
    scores = tmp_path / "scores.csv"
    assert 0 == main(["replay", str(path), "--detector", "generic", "--scores", str(scores)])
    with scores.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert 600 == len(rows)
    assert ["timestamp", "value", "score"] == list(rows[0])
    scores_before = [float(r["score"]) for r in rows[:500]]
    assert max(scores_before) < float(rows[500]["score"])


def test_out_of_order_and_repeated_rows_are_dropped_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows earlier than or equal to the last kept one are skipped, counted, not fatal."""
    path = _series_csv(tmp_path / "rps.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(10, lines[5])  # out of order (line 11)
    lines.insert(20, lines[19])  # repeated timestamp (line 21)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    scores = tmp_path / "scores.csv"
    assert 0 == main(["replay", str(path), "--detector", "generic", "--scores", str(scores)])
    assert "dropped 2 row(s) out of time order or repeating a timestamp (first at line 11)" in (
        capsys.readouterr().err
    )
    assert 601 == len(scores.read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("timestamp,value\n1,0.1\ninf,0.2\n", ":3: timestamp: not finite"),
        ("timestamp,value\n1,0.1\nnan,0.2\n", ":3: timestamp: not finite"),
        ("timestamp,value\n1,0.1\n1e300,0.2\n", ":3: timestamp: out of range"),
        ("timestamp,value\n1,0.1\n2,-inf\n", ":3: value: not finite"),
        ("timestamp,value\n1,0.1\n2\n", ":3: expected 2 fields"),
        ("timestamp,value\n1,0.1\n2,1e400\n", ":3: value: not finite"),
    ],
)
def test_bad_rows_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str
) -> None:
    """Bad input exits 2 with one line naming file and line, no traceback."""
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    assert 2 == main(["replay", str(path), "--detector", "generic"])
    err = capsys.readouterr().err
    assert 1 == len(err.strip().splitlines())
    assert f"{path}{where}" in err


def test_scores_need_the_generic_detector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--scores with another detector is refused with exit 2."""
    path = _series_csv(tmp_path / "rps.csv")
    assert 2 == main(["replay", str(path), "--detector", "latency", "--scores", "x.csv"])
    assert "--scores needs --detector generic" in capsys.readouterr().err


def test_set_tunes_the_generic_detector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--set threshold=... reaches the generic detector; an unknown key is named."""
    path = _series_csv(tmp_path / "rps.csv")
    assert 0 == main(["replay", str(path), "--detector", "generic", "--set", "threshold=1e9"])
    assert "0 finding(s)" in capsys.readouterr().out
    assert 2 == main(["replay", str(path), "--detector", "generic", "--set", "nope=1"])
    assert "unknown setting of detector generic" in capsys.readouterr().err
