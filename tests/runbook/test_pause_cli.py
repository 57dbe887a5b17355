"""The operator commands: `sentinel pause/resume/pauses` on the state database (audited),
and `sentinel runs show/cancel`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_config_files import write_config

from sentinel.base.audit import entries
from sentinel.base.db import open_db
from sentinel.cli import main
from sentinel.config import load_config
from sentinel.runbook.pauses import PauseStore
from sentinel.testing.triton_local import free_port


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        "pod: pod-a\n"
        "state_dir: state\n"
        "triton: {url: '127.0.0.1:9', protocol: http, timeout_s: 0.5}\n"
        f"api: {{bind: 127.0.0.1, port: {free_port()}, token: t0k3n-for-cli-tests}}\n",
    )


def _store(config_file: Path) -> PauseStore:
    config = load_config(config_file)
    return PauseStore(open_db(config.state_dir / "sentinel.db"))


def test_pause_list_resume_round_trip(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pause stores a scoped pause, pauses lists it, resume ends it; both are audited."""
    cfg = ["--config", str(config_file)]
    pause = ["pause", "--model", "digits", "--for", "2h", "--reason", "engine rebuild", *cfg]
    assert 0 == main(pause)
    pause_id = capsys.readouterr().out.split()[0]
    assert 0 == main(["pauses", "--json", *cfg])
    [listed] = json.loads(capsys.readouterr().out)
    assert (pause_id, "model=digits", 7200.0) == (
        listed["id"],
        listed["scope"],
        listed["ends_at"] - listed["created_at"],
    )
    assert 0 == main(["resume", pause_id, *cfg])
    assert f"{pause_id}  resumed  model=digits" == capsys.readouterr().out.strip()
    store = _store(config_file)
    assert [] == store.list(time.time())
    actions = [(e["action"], e["target"]) for e in entries(store.conn)]
    assert [("pause.resume", pause_id), ("pause.add", pause_id)] == actions


def test_resume_without_id_ends_every_pause(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sentinel resume` with no id resumes all active pauses."""
    cfg = ["--config", str(config_file)]
    assert 0 == main(["pause", "--for", "1h", "--reason", "a", *cfg])
    assert 0 == main(["pause", "--playbook", "halve", "--for", "1h", "--reason", "b", *cfg])
    capsys.readouterr()
    assert 0 == main(["resume", *cfg])
    assert 2 == len(capsys.readouterr().out.strip().splitlines())
    assert 0 == main(["pauses", *cfg])
    assert "no pauses" == capsys.readouterr().out.strip()


def test_bad_pause_arguments_exit_2(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A duration that is not N[smhd], an empty reason or an unknown id are refused."""
    cfg = ["--config", str(config_file)]
    assert 2 == main(["pause", "--for", "two hours", "--reason", "x", *cfg])
    assert "--for: 'two hours'" in capsys.readouterr().err
    assert 2 == main(["pause", "--for", "1h", "--reason", " ", *cfg])
    assert "reason" in capsys.readouterr().err
    assert 1 == main(["resume", "nope", *cfg])
    assert [] == _store(config_file).list(0.0, include_ended=True)


def test_runs_show_prints_every_step(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """runs show ID prints the run, each step with its params, and the evidence."""
    cfg = ["--config", str(config_file)]
    plan = ["playbook", "run", "halve", "--target", "model=digits", "--dry-run", "--json"]
    assert 0 == main([*plan, "--local", *cfg])
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert 0 == main(["runs", "show", run_id, "--local", *cfg])
    out = capsys.readouterr().out
    assert out.startswith(f"run {run_id}  halve  planned (dry run)")
    assert "- step       halve              triton.load_model      planned" in out
    assert '"patch": {"max_batch_size": 4}' in out
    assert "evidence model_config" in out
    assert 0 == main(["runs", "show", run_id, "--json", "--local", *cfg])
    assert ["halve"] == [s["name"] for s in json.loads(capsys.readouterr().out)["steps"]]
    assert 2 == main(["runs", "show", "nope", "--local", *cfg])
    assert "no run with id 'nope'" in capsys.readouterr().err


def test_runs_cancel_goes_to_the_daemon(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """cancel refuses --local (the run lives in the daemon) and says when no daemon answers."""
    cfg = ["--config", str(config_file)]
    assert 2 == main(["runs", "cancel", "abc", "--local", *cfg])
    assert 3 == main(["runs", "cancel", "abc", *cfg])
    assert "no sentinel daemon answered" in capsys.readouterr().err
