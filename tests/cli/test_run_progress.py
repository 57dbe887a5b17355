"""`playbook run` prints each step's progress to stderr while it waits; --quiet does not."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from cli_config_files import write_config

from sentinel.cli import main
from sentinel.cli.progress import RunProgress


class StandInRuns:
    """A stand-in for the daemon's run list: the runs it is given, newest first."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    def __call__(self) -> list[dict[str, Any]]:
        return self.runs


def run(run_id: str, playbook: str, started_at: float, *steps: tuple[str, str]) -> dict[str, Any]:
    return {
        "id": run_id,
        "playbook": playbook,
        "started_at": started_at,
        "steps": [{"phase": "main", "name": n, "action": "wait", "status": s} for n, s in steps],
    }


def test_each_step_change_is_printed_once() -> None:
    """A poll prints the steps whose state changed since the last one, for this run only."""
    runs = StandInRuns()
    out = io.StringIO()
    progress = RunProgress(runs, "drain", since=100.0, out=out)
    runs.runs = [run("old", "drain", 50.0, ("a", "succeeded")), run("x", "other", 120.0)]
    assert [] == progress.poll()
    runs.runs = [run("r1", "drain", 101.0, ("a", "running"))]
    assert ["r1 main a (wait): running"] == [line.split("] ", 1)[1] for line in progress.poll()]
    runs.runs = [run("r1", "drain", 101.0, ("a", "running"))]
    assert [] == progress.poll()
    runs.runs = [run("r1", "drain", 101.0, ("a", "succeeded"), ("b", "running"))]
    assert ["r1 main a (wait): succeeded", "r1 main b (wait): running"] == [
        line.split("] ", 1)[1] for line in progress.poll()
    ]
    assert 3 == len(out.getvalue().splitlines())


def test_a_failed_look_prints_nothing() -> None:
    """A poll that cannot reach the runs is skipped: the command's answer says what failed."""

    def unreachable() -> list[dict[str, Any]]:
        raise OSError("connection refused")

    out = io.StringIO()
    assert [] == RunProgress(unreachable, "drain", since=0.0, out=out).poll()
    assert "" == out.getvalue()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        "state_dir: state\ntriton: {url: '127.0.0.1:9', protocol: http, timeout_s: 500ms}\n",
    )


def test_playbook_run_prints_progress_to_stderr(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A local run prints its steps on stderr; stdout stays the result (JSON here)."""
    argv = ["playbook", "run", "halve", "--target", "model=digits", "--dry-run", "--json"]
    assert 0 == main([*argv, "--local", "-c", str(config)])
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert f"{result['run_id']} step halve (triton.load_model): planned" in captured.err


def test_quiet_playbook_run_prints_no_progress(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--quiet leaves stderr without progress lines."""
    argv = ["playbook", "run", "halve", "--target", "model=digits", "--dry-run", "--quiet"]
    assert 0 == main([*argv, "--local", "-c", str(config)])
    captured = capsys.readouterr()
    assert "(triton.load_model): planned" not in captured.err
    assert "planned" in captured.out
