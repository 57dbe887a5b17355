"""ServerPids: Triton's pid for GPU memory attribution, looked up every tick but cheaply.

A folder of ``<pid>/comm`` files stands in for /proc, so the test controls which
processes exist and can count the full scans.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sentinel.config import Config
from sentinel.wiring import ServerPids


class ProcStandIn:
    """A stand-in /proc: processes by pid and name; counts how often it is listed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.scans = 0

    def start(self, pid: int, name: str) -> None:
        (self.root / str(pid)).mkdir()
        (self.root / str(pid) / "comm").write_text(name + "\n")

    def end(self, pid: int) -> None:
        (self.root / str(pid) / "comm").unlink()
        (self.root / str(pid)).rmdir()


@pytest.fixture
def proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProcStandIn:
    stand_in = ProcStandIn(tmp_path)
    listed = Path.iterdir

    def counting_iterdir(self: Path) -> Iterator[Path]:
        if self == tmp_path:
            stand_in.scans += 1
        return listed(self)

    monkeypatch.setattr(Path, "iterdir", counting_iterdir)
    return stand_in


def test_a_running_server_is_not_searched_for_again(proc: ProcStandIn) -> None:
    """Once found, the server costs one small read a tick: no scan while it runs."""
    proc.start(100, "bash")
    proc.start(200, "tritonserver")
    pids = ServerPids(Config(), proc.root)
    changed = [pids.refresh(float(t)) for t in range(10)]
    assert ([True] + [False] * 9, {200}, 1) == (changed, pids(), proc.scans)


def test_a_restarted_server_is_found_at_once(proc: ProcStandIn) -> None:
    """The server's pid gone (a restart), the next tick scans and finds the new one."""
    proc.start(200, "tritonserver")
    pids = ServerPids(Config(), proc.root)
    pids.refresh(0.0)
    proc.end(200)
    proc.start(300, "tritonserver")
    assert (True, {300}) == (pids.refresh(1.0), pids())


def test_no_server_in_sight_is_searched_for_every_few_seconds(proc: ProcStandIn) -> None:
    """A sidecar that cannot see the server scans once per RESCAN_S, not every tick; the
    pids known before are kept."""
    pids = ServerPids(Config(), proc.root)
    for t in range(11):
        pids.refresh(float(t))
    expected_scans = 1 + int(10 // ServerPids.RESCAN_S)
    assert (expected_scans, set()) == (proc.scans, pids())
