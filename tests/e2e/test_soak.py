"""The soak benchmark's short variant: `sentinel run` against a real Triton for 90 s with
faults on a schedule and notifiers that fail, rate-limit and answer late."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.triton, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.timeout(420)
def test_soak_loses_nothing_sends_nothing_twice_and_stays_flat(tmp_path: Path) -> None:
    """Every planned page arrives exactly once through 500s, 429s and late answers; RSS and
    open files do not grow."""
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "soak.py", "--seconds", "90", "--period", "15", "--json", str(out)],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    lost_and_doubled = {
        n: (r[n]["lost"], r[n]["duplicated"], r[n]["pending_at_end"])
        for n in ("slack", "pagerduty")
    }
    assert {"slack": (0, 0, 0), "pagerduty": (0, 0, 0)} == lost_and_doubled, proc.stdout
    assert min(r["slack"]["planned"], r["pagerduty"]["planned"]) > 0, proc.stdout
    assert r["faults_injected"] >= 3, proc.stdout
    assert 0 == r["sentinel_exit"], proc.stdout
    growth = (
        r["rss_mib"]["last"] - r["rss_mib"]["first"],
        r["open_fds"]["last"] - r["open_fds"]["first"],
    )
    assert growth[0] <= 20, (growth, proc.stdout)
    assert growth[1] <= 10, (growth, proc.stdout)
    assert 0 == proc.returncode, proc.stdout[-3000:]
