"""`sentinel replay`: CSV and JSONL in, findings out, bad input named with its line."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sentinel.cli import main

TRACES = Path(__file__).resolve().parent.parent / "data" / "traces"


def _step_csv(path: Path, iso: bool) -> Path:
    """A latency series with a x4 step between samples 200 and 260 (5 s apart)."""
    lines = ["timestamp,value"]
    for i in range(320):
        ts = 1_763_000_000 + 5 * i
        stamp = (
            datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if iso else str(ts)
        )
        value = 0.08 if 200 <= i < 260 else 0.02 + 0.001 * (i % 3)
        lines.append(f"{stamp},{value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_csv_epoch_in_epoch_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Epoch timestamps in give epoch timestamps out, one JSON object per finding."""
    code = main(
        ["replay", str(_step_csv(tmp_path / "s.csv", iso=False)), "--detector", "latency", "--json"]
    )
    records = _json_lines(capsys.readouterr().out)
    assert 0 == code
    assert 1 == len(records)
    r = records[0]
    assert ("latency_spike", "warning") == (r["kind"], r["severity"])
    assert isinstance(r["started_at"], float)
    assert 1_763_000_000 + 5 * 200 <= r["started_at"] < r["detected_at"] < r["cleared_at"]  # type: ignore[operator]
    assert {"value_s", "threshold_s", "baseline_median_s", "samples"} <= set(r["evidence"])  # type: ignore[arg-type]


def test_csv_iso_in_iso_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ISO 8601 timestamps in give ISO 8601 timestamps out, at the same instants."""
    main(
        ["replay", str(_step_csv(tmp_path / "s.csv", iso=False)), "--detector", "latency", "--json"]
    )
    epoch = _json_lines(capsys.readouterr().out)[0]
    main(
        ["replay", str(_step_csv(tmp_path / "i.csv", iso=True)), "--detector", "latency", "--json"]
    )
    iso = _json_lines(capsys.readouterr().out)[0]
    for key in ("started_at", "detected_at", "cleared_at"):
        assert epoch[key] == datetime.fromisoformat(str(iso[key])).timestamp()


def test_set_overrides_a_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--set ratio=5 raises the bar above a x4 step, so nothing is found (exit 0)."""
    csv = _step_csv(tmp_path / "s.csv", iso=False)
    code = main(
        ["replay", str(csv), "--detector", "latency", "--set", "ratio=5", "--set", "k_sigma=0"]
    )
    assert (0, "0 finding(s)") == (code, capsys.readouterr().out.strip())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "bogus=1"], "--set bogus: unknown setting of detector latency"),
        (["--set", "ratio=0.5"], "--set latency.ratio: Input should be greater than 1"),
        (["--set", "ratio"], "expected KEY=VALUE"),
        ([], "--detector is required"),
    ],
)
def test_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Bad settings or a missing detector exit 2 with the key named."""
    csv = _step_csv(tmp_path / "s.csv", iso=False)
    extra = args if args == [] else ["--detector", "latency", *args]
    assert 2 == main(["replay", str(csv), *extra])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("time,value\n1,2\n", ":1: expected the header"),
        ("timestamp,value\n1,0.1\n2,abc\n", ":3: value: not a number"),
        ("timestamp,value\n1,0.1\nyesterday,0.2\n", ":3: timestamp: neither ISO 8601"),
        ("timestamp,value\n1,0.1,7\n", ":2: expected 2 fields"),
        ("timestamp,value\n1,0.1\n2025-01-01T00:00:00Z,0.2\n", ":3: timestamp: mixes"),
        ("timestamp,value\n1,nan\n", ":2: value: not finite"),
    ],
)
def test_bad_csv_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str
) -> None:
    """Malformed CSV exits 2 naming file and line."""
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    assert 2 == main(["replay", str(path), "--detector", "latency"])
    err = capsys.readouterr().err
    assert f"{path}{where}" in err


def test_bad_recording_line_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A recording with a broken line exits 2 with the line number."""
    good = (TRACES / "errors_xid.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join([*good[:2], "{not json", good[2]]) + "\n", encoding="utf-8")
    assert 2 == main(["replay", str(path)])
    assert f"{path}:3:" in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not there is bad input, not a crash."""
    assert 2 == main(["replay", str(tmp_path / "nope.jsonl")])
    assert "cannot read" in capsys.readouterr().err


def test_recording_runs_every_detector(capsys: pytest.CaptureFixture[str]) -> None:
    """A JSONL recording replays through all detectors; the hardware Xid stays open."""
    assert 0 == main(["replay", str(TRACES / "errors_xid.jsonl"), "--json"])
    records = _json_lines(capsys.readouterr().out)
    assert [("xid_hardware", "critical", None)] == [
        (r["kind"], r["severity"], r["cleared_at"]) for r in records
    ]


def test_text_output_through_the_installed_command() -> None:
    """The `sentinel` entry point prints finding, times and evidence, and exits 0."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentinel",
            "replay",
            str(TRACES / "memory_high.csv"),
            "--detector",
            "memory",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == proc.returncode, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("gpu_oom [critical] GPU-series: GPU memory 97.")
    assert "started " in lines[1]
    assert "cleared " in lines[1]
    assert lines[2].startswith("  evidence {")
    assert "1 finding(s)" == lines[-1]


def test_thermal_csv_uses_the_assumed_slowdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A temperature CSV is judged by its margin to 89 C unless fallback_slowdown_c is set."""
    path = tmp_path / "t.csv"
    temps = [70.0] * 10 + [88.0] * 5 + [70.0] * 10
    path.write_text(
        "timestamp,value\n" + "".join(f"{100 + i},{t}\n" for i, t in enumerate(temps)),
        encoding="utf-8",
    )
    main(["replay", str(path), "--detector", "thermal", "--json"])
    default = _json_lines(capsys.readouterr().out)
    main(
        ["replay", str(path), "--detector", "thermal", "--json", "--set", "fallback_slowdown_c=95"]
    )
    higher = _json_lines(capsys.readouterr().out)
    assert [("thermal_throttle", 1.0, 110.0, 112.0)] == [
        (r["kind"], r["evidence"]["margin_c"], r["started_at"], r["detected_at"])  # type: ignore[index]
        for r in default
    ]
    assert [] == higher


def test_iso_offset_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Timestamps written with +02:00 come back with +02:00."""
    path = tmp_path / "m.csv"
    rows = [
        f"2026-01-01T10:{i // 60:02d}:{i % 60:02d}+02:00,{0.97 if i >= 10 else 0.4}"
        for i in range(200)
    ]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    main(["replay", str(path), "--detector", "memory", "--json"])
    r = _json_lines(capsys.readouterr().out)[0]
    assert ("gpu_oom", "2026-01-01T10:00:10+02:00") == (r["kind"], r["started_at"])


def test_config_detectors_section_is_the_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--config takes thresholds from the config's detectors: section."""
    cfg = tmp_path / "sentinel.yaml"
    cfg.write_text("detectors:\n  latency:\n    ratio: 5\n    k_sigma: 0\n", encoding="utf-8")
    csv = _step_csv(tmp_path / "s.csv", iso=False)
    assert 0 == main(["replay", str(csv), "--detector", "latency", "--config", str(cfg)])
    assert "0 finding(s)" == capsys.readouterr().out.strip()
    cfg.write_text("detectors:\n  latency:\n    ratoi: 5\n", encoding="utf-8")
    assert 2 == main(["replay", str(csv), "--detector", "latency", "--config", str(cfg)])
    assert f"{cfg}:3: detectors.latency.ratoi" in capsys.readouterr().err
