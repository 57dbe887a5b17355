"""A SIGKILL in the middle of a run: interrupted on restart, never re-executed."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

from sentinel.base.clock import FakeClock
from sentinel.base.db import open_db
from sentinel.runbook.engine import Engine
from sentinel.runbook.schema import load_playbook
from sentinel.runbook.settings import RunbookSettings

PLAYBOOK = """\
name: slow
steps:
  - name: first
    action: wait
    with: {seconds: 0}
  - name: second
    action: wait
    with: {seconds: 3600}
"""

CHILD = """
import asyncio, sys
from sentinel.base.clock import SystemClock
from sentinel.base.db import open_db
from sentinel.runbook.engine import Engine
from sentinel.runbook.schema import load_playbook
from sentinel.runbook.settings import RunbookSettings

async def main() -> None:
    lp = load_playbook(sys.argv[2])
    engine = Engine(settings=RunbookSettings(dirs=[]), conn=open_db(sys.argv[1]),
                    clock=SystemClock(), playbooks={lp.playbook.name: lp}, pod="pod-a")
    await engine.run_manual("slow", {"model": "digits"}, actor="child")

asyncio.run(main())
"""


def _second_step_started(db: Path) -> bool:
    if not db.exists():
        return False
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT COUNT(*) FROM runbook_steps WHERE name = 'second' AND status = 'started'"
        ).fetchone()
    except sqlite3.OperationalError:
        return False  # the child has not created its tables yet
    finally:
        conn.close()
    return bool(row[0])


async def _wait_for_started(db: Path, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _second_step_started(db):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the child never started its second step")


async def test_sigkill_mid_run_is_interrupted_not_rerun(tmp_path: Path) -> None:
    """After a kill -9 the run and its open step are 'interrupted'; restart re-runs nothing."""
    db = tmp_path / "state" / "sentinel.db"
    pb = tmp_path / "slow.yaml"
    pb.write_text(PLAYBOOK, encoding="utf-8")
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, str(db), str(pb))
    try:
        await _wait_for_started(db)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        await asyncio.wait_for(child.wait(), 30)
    assert child.returncode == -signal.SIGKILL

    conn = open_db(db)
    try:
        lp = load_playbook(pb)
        engine = Engine(
            settings=RunbookSettings(dirs=[]),
            conn=conn,
            clock=FakeClock(),
            playbooks={"slow": lp},
            pod="pod-a",
        )
        await engine.start()
        await engine.stop()
        [run] = engine.history.runs(10)
        steps = [(s["name"], s["status"]) for s in run["steps"]]
        assert ("interrupted", "child") == (run["status"], run["actor"])
        assert [("first", "succeeded"), ("second", "interrupted")] == steps
        assert None is engine.history.conn.execute("SELECT run_id FROM runbook_locks").fetchone()
    finally:
        conn.close()
