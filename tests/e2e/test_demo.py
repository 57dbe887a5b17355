"""`sentinel demo` end to end: five faults against a real tritonserver."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.triton, pytest.mark.slow]


def tritonservers_of(workdir_prefix: str) -> list[str]:
    """Command lines of live tritonservers whose model repository is under the prefix."""
    return [args for _, args in _servers(workdir_prefix)]


def _servers(workdir_prefix: str) -> list[tuple[int, str]]:
    out = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if "tritonserver" in args and workdir_prefix in args:
            found.append((int(pid), args))
    return found


def _kill_leftovers(workdir_prefix: str) -> None:
    """A failed test must not leave a server running (the demo was killed, not stopped)."""
    for pid, _ in _servers(workdir_prefix):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.timeout(400)  # the demo itself takes about 100 s
def test_demo_detects_and_mitigates_every_fault(tmp_path: Path) -> None:
    """The demo exits 0, and its report shows every fault detected and handled."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sentinel", "demo", "--out", str(tmp_path / "report")],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        left = tritonservers_of(str(tmp_path))
    except subprocess.TimeoutExpired as exc:  # show where it stood, not just that it ran long
        shown = (exc.stdout or b"")[-4000:]
        text = shown.decode(errors="replace") if isinstance(shown, bytes) else shown
        pytest.fail(f"the demo ran past 300 s; its timeline so far:\n{text}")
    finally:
        _kill_leftovers(str(tmp_path))  # only ever finds any if the demo failed to clean up
    assert 0 == done.returncode, done.stdout[-3000:] + done.stderr[-2000:]
    report = (tmp_path / "report" / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and " ok |" in line]
    assert ["int8-drift", "latency", "hang", "gpu-oom+thermal", "generation-drift"] == [
        r.split("|")[1].strip() for r in rows
    ]
    assert (tmp_path / "report" / "timeline.svg").read_text().startswith("<svg")
    assert [] == left


def test_demo_cleans_up_on_interrupt(tmp_path: Path) -> None:
    """SIGINT mid-demo stops it with exit 130 and leaves no tritonserver behind."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "demo", "--out", str(tmp_path / "report")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not tritonservers_of(str(tmp_path)):
            assert time.monotonic() < deadline, "the demo never started its server"
            time.sleep(0.2)
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            _kill_leftovers(str(tmp_path))
    assert 130 == proc.returncode, output[-2000:]
    assert "interrupted" in output
    assert [] == tritonservers_of(str(tmp_path))
