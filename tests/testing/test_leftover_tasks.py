"""The suite's autouse leftover-task check (tests/conftest.py) can fail a test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

LEAKY = '''
import asyncio


async def test_leaves_a_task() -> None:
    """Starts a task and forgets it."""
    asyncio.create_task(asyncio.sleep(60))


async def test_cancels_its_task() -> None:
    """Starts a task and cancels it."""
    asyncio.create_task(asyncio.sleep(60)).cancel()
'''


def test_a_test_that_leaves_a_task_running_fails(tmp_path: Path) -> None:
    """A test leaving a task behind errors at teardown; one that cancels its task passes."""
    (tmp_path / "test_leaky.py").write_text(LEAKY, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    # the suite's conftest loaded as a plugin into a run of just the file above
    plugin = ["-p", "no:cacheprovider", "-p", "conftest", "-o", "asyncio_mode=auto"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *plugin, "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    tail = done.stdout.strip().splitlines()[-1]
    assert "2 passed, 1 error" in tail, done.stdout
    assert "test left asyncio tasks running" in done.stdout
