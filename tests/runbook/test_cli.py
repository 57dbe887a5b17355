"""The playbook, runs and breaker commands: exit codes, output, API and --local."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cli_config_files import HALVE_PLAYBOOK, write_config

import sentinel.base.audit  # noqa: F401 -- registers the API's audit table
from sentinel.api import build_app, start_api
from sentinel.base.clock import SystemClock
from sentinel.base.db import open_db
from sentinel.cli import main
from sentinel.config import load_config
from sentinel.runbook.engine import Engine
from sentinel.runbook.service import EnginePlaybookService
from sentinel.testing.triton_local import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "cli-test-token-0123"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        "pod: pod-a\n"
        "state_dir: state\n"
        "triton: {url: '127.0.0.1:9', protocol: http, timeout_s: 0.5}\n"
        f"api: {{bind: 127.0.0.1, port: {free_port()}, token: {TOKEN}}}\n",
    )


def test_validate_good_and_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """validate exits 0 for shipped playbooks, 2 with FILE:LINE: field lines for a bad one."""
    assert 0 == main(["playbook", "validate", str(ROOT / "playbooks")])
    bad = tmp_path / "bad.yaml"
    bad.write_text(HALVE_PLAYBOOK.replace("triton.load_model", "triton.nope"), encoding="utf-8")
    capsys.readouterr()
    assert 2 == main(["playbook", "validate", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert 1 == len(err)
    assert err[0].startswith(f"{bad}:6: steps.0.action: ")


def test_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    """schema prints a JSON Schema an editor can use."""
    assert 0 == main(["playbook", "schema"])
    schema = json.loads(capsys.readouterr().out)
    assert "Playbook" == schema["title"]


def test_test_prints_a_plan_for_a_recorded_incident(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """playbook test renders the plan from an incident file and a model config."""
    incident = tmp_path / "incident.json"
    incident.write_text(
        json.dumps(
            {
                "id": "i1",
                "kind": "latency_spike",
                "severity": "critical",
                "subject": {"model": "digits", "version": "1"},
                "started_at": 100.0,
                "detected_at": 130.0,
            }
        )
    )
    model_config = tmp_path / "config.json"
    model_config.write_text(json.dumps({"max_batch_size": 32}))
    args = ["playbook", "test", "halve", "--incident", str(incident), "--config", str(config_file)]
    assert 0 == main([*args, "--model-config", str(model_config), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert ("planned", True) == (result["status"], result["dry_run"])
    assert {"model": "digits", "patch": {"max_batch_size": 4}} == result["steps"][0]["params"]
    assert not (tmp_path / "state").exists()  # a plan writes no state


def test_test_rejects_a_bad_incident_file(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed incident file exits 2 naming the file and line."""
    incident = tmp_path / "incident.json"
    incident.write_text('{"kind": "latency_spike",\n  oops}')
    args = ["playbook", "test", "halve", "--incident", str(incident), "--config", str(config_file)]
    assert 2 == main(args)
    assert f"{incident}:2: invalid JSON" in capsys.readouterr().err


def test_local_dry_run_then_runs_and_breaker(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--local plans a run on the state database; runs lists it; breaker reset works."""
    cfg = ["--config", str(config_file), "--local"]
    run = ["playbook", "run", "halve", "--target", "model=digits", "--dry-run", "--json"]
    assert 0 == main([*run, *cfg])
    planned = json.loads(capsys.readouterr().out)
    assert "planned" == planned["status"]
    assert 0 == main(["runs", "--json", *cfg])
    [row] = json.loads(capsys.readouterr().out)
    assert (row["id"], row["dry_run"]) == (planned["run_id"], True)
    assert row["actor"].startswith("cli")
    assert 0 == main(["breaker", "reset", *cfg])
    assert 0 == main(["breaker", "status", "--json", "--config", str(config_file)])
    out = capsys.readouterr().out
    assert json.loads(out.split("\n", 1)[1])["open"] is False


def test_bad_target_and_missing_daemon(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A target without '=' exits 2; without --local and no daemon, exit 3 says so."""
    cfg = ["--config", str(config_file)]
    assert 2 == main(["playbook", "run", "halve", "--target", "digits", *cfg])
    assert 2 == main(["playbook", "run", "halve", "--target", "version=1", *cfg, "--local"])
    assert "target: needs model=NAME" in capsys.readouterr().err
    assert 3 == main(["playbook", "run", "halve", "--target", "model=digits", *cfg])
    assert "no sentinel daemon answered" in capsys.readouterr().err


async def test_run_through_the_daemon_api(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --local the command goes through the control API, token and actor included;
    its progress lines come from the API too."""
    config = load_config(config_file)
    conn = open_db(config.state_dir / "sentinel.db")
    engine = Engine(settings=config.playbooks, conn=conn, clock=SystemClock(), pod="pod-a")
    app = build_app(
        conn=conn, token=TOKEN, clock=SystemClock(), playbooks=EnginePlaybookService(engine)
    )
    runner, _ = await start_api(app, config.api.bind, config.api.port)
    try:
        cfg = ["--config", str(config_file)]
        run = ["playbook", "run", "halve", "--target", "model=digits", "--dry-run", "--json"]
        assert 0 == await asyncio.to_thread(main, [*run, *cfg])
        answer = capsys.readouterr()
        result = json.loads(answer.out)
        assert 0 == await asyncio.to_thread(main, ["playbook", "list", "--json", *cfg])
        listed = json.loads(capsys.readouterr().out)
        missing = ["playbook", "run", "nope", "--target", "model=digits", *cfg]
        assert 2 == await asyncio.to_thread(main, missing)
        [row] = EnginePlaybookService(engine).runs(5)
    finally:
        await runner.cleanup()
        conn.close()
    assert "planned" == result["status"]
    assert f"{result['run_id']} step halve (triton.load_model): planned" in answer.err  # progress
    assert row["id"] == result["run_id"]
    assert row["actor"].startswith("token:cli")
    assert ["halve"] == [p["name"] for p in listed]
