"""Damage, detection and restore against a real tritonserver, through the whole daemon.

Each test serves a private copy of examples/model_repository (the shipped one is never
touched), lets the canaries prove version 1 known-good (manifest and backup), then
damages a file of the served model and reloads it the way a bad deploy would.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from integrity_helpers import (
    GOLDEN_DIGITS,
    ROOT,
    copy_repository,
    flip_byte,
    manifest_of,
    truncate,
)

from sentinel.base.modelrepo import write_backup
from sentinel.cli import main as cli_main
from sentinel.config import Config
from sentinel.incidents.store import IncidentStore
from sentinel.testing.triton_local import LocalTriton
from sentinel.vocabulary.incidents import IncidentStatus
from sentinel.wiring import Sentinel, build

pytestmark = pytest.mark.triton


def config_for(server: LocalTriton, repo: Path, tmp: Path) -> dict[str, Any]:
    return {
        "pod": "test-pod",
        "state_dir": str(tmp / "state"),
        "triton": {
            "url": server.http_url,
            "protocol": "http",
            "metrics_url": server.metrics_url,
            "health_interval_s": 0.2,
            "timeout_s": 5.0,
        },
        "canaries": [
            {
                "model": "digits",
                "golden_set": str(GOLDEN_DIGITS),
                "interval_s": 0.3,
                "batch_sizes": [1, 4],
            }
        ],
        "gpu": {"source": "off"},
        "model_files": {
            "repository": str(repo),
            "backup_dir": str(tmp / "backup"),
            "interval_s": 0.3,
            "known_good_after": 2,
        },
        "playbooks": {"dirs": [str(ROOT / "playbooks")], "canary_interval_s": 0.5},
        "incidents": {"resolve_hold_s": 1.0},
        "api": {"port": 0},
    }


def reload(server: LocalTriton, model: str = "digits") -> str:
    """Ask Triton to load the model again from disk; its error text, '' when it loaded."""
    url = f"http://{server.http_url}/v2/repository/models/{model}/load"
    request = urllib.request.Request(url, data=b"{}", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60):
            return ""
    except urllib.error.HTTPError as exc:
        return exc.read().decode(errors="replace")


async def wait_for(what: str, predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(0.1)


def restore_runs(s: Sentinel) -> list[dict[str, Any]]:
    return [r for r in s.engine.history.runs(20) if r["playbook"] == "restore-known-good"]


def verified(run: dict[str, Any]) -> bool:
    return any(st["name"] == "restore" and st["status"] == "verified" for st in run["steps"])


def incidents_of(s: Sentinel, kind: str) -> list[Any]:
    return [i for i in IncidentStore(s.engine.history.conn).list() if i.kind == kind]


async def test_truncated_weights_are_detected_restored_and_resolved(
    triton_factory: Callable[..., LocalTriton], tmp_path: Path
) -> None:
    """Truncate the served model's weights and reload: finding, restore, canary, resolved."""
    repo = copy_repository(tmp_path)
    weights = repo / "digits" / "1" / "weights.npz"
    good = weights.read_bytes()
    server = triton_factory(repo=repo)
    config = Config.model_validate(config_for(server, repo, tmp_path))
    async with build(config, serve_api=False, serve_metrics=False) as s:
        task = asyncio.create_task(s.daemon.run())
        try:
            backup = tmp_path / "backup" / "digits" / "1" / "manifest.json"
            await wait_for("known-good backup of digits:1", backup.is_file)
            truncate(weights)
            await asyncio.to_thread(reload, server)
            await wait_for("a verified restore", lambda: any(map(verified, restore_runs(s))))
            assert good == weights.read_bytes()
            changed = incidents_of(s, "model_files_changed")
            assert 1 == len(changed)
            finding_files = [f["file"] for f in changed[0].evidence["files"]]
            assert ["1/weights.npz"] == finding_files
            await wait_for(
                "the incident resolved",
                lambda: incidents_of(s, "model_files_changed")[0].status == IncidentStatus.RESOLVED,
            )
        finally:
            s.daemon.request_stop()
            await task


def test_cli_verify_and_restore_refuse_a_backup_with_one_flipped_byte(
    triton_factory: Callable[..., LocalTriton],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`model verify` exits 1 on a flipped byte; `model restore` refuses it and changes nothing."""
    repo = copy_repository(tmp_path)
    server = triton_factory(repo=repo)
    data = config_for(server, repo, tmp_path)
    data["model_files"]["known_good_after"] = 1
    config_file = tmp_path / "sentinel.yaml"
    config_file.write_text(json.dumps(data))
    asyncio.run(_prove_once(Config.model_validate(data)))
    backup = tmp_path / "backup"
    assert 0 == cli_main(["model", "verify", str(backup)])
    flip_byte(backup / "digits" / "1" / "files" / "1" / "weights.npz")
    assert 1 == cli_main(["model", "verify", str(backup)])
    assert "1/weights.npz: changed" in capsys.readouterr().out
    truncate(repo / "digits" / "1" / "weights.npz")
    damaged = (repo / "digits" / "1" / "weights.npz").read_bytes()
    args = ["model", "restore", "digits", "--local", "--config", str(config_file), "--json"]
    assert 1 == cli_main(args)
    assert damaged == (repo / "digits" / "1" / "weights.npz").read_bytes()
    run = json.loads(capsys.readouterr().out)
    check = next(st for st in run["steps"] if st["name"] == "check")
    assert ["1/weights.npz"] == [p["file"] for p in check["output"]["backup_problems"]]
    assert "paged" == run["status"]


async def _prove_once(config: Config) -> None:
    """Run the daemon until its canaries have proven (and backed up) digits:1."""
    async with build(config, serve_api=False, serve_metrics=False) as s:
        task = asyncio.create_task(s.daemon.run())
        try:
            manifest = Path(config.model_files.backup_dir or "") / "digits" / "1" / "manifest.json"
            await wait_for("known-good backup of digits:1", manifest.is_file)
        finally:
            s.daemon.request_stop()
            await task


def test_restore_that_does_not_verify_is_rolled_back(
    triton_factory: Callable[..., LocalTriton],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A backup whose model fails its canaries is rolled back: the files before it return."""
    repo = copy_repository(tmp_path)
    config_pbtxt = repo / "digits" / "config.pbtxt"
    original = config_pbtxt.read_text()
    # the backup: self-consistent, but every request of the model it holds fails
    config_pbtxt.write_text(
        original.replace(
            '"error_rate" value { string_value: "0"', '"error_rate" value { string_value: "1"'
        )
    )
    write_backup(repo / "digits", manifest_of(repo), tmp_path / "backup")
    # the repository now: an edited config that still serves well
    edited = original.replace(
        '"delay_ms" value { string_value: "0"', '"delay_ms" value { string_value: "1"'
    )
    config_pbtxt.write_text(edited)
    server = triton_factory(repo=repo)
    data = config_for(server, repo, tmp_path)
    data["playbooks"]["overrides"] = {
        "restore-known-good": {"steps": {"restore": {"verify": {"within": "4s"}}}}
    }
    config_file = tmp_path / "sentinel.yaml"
    config_file.write_text(json.dumps(data))
    args = ["model", "restore", "digits", "--local", "--config", str(config_file), "--json"]
    assert 1 == cli_main(args)
    assert edited == config_pbtxt.read_text()
    run = json.loads(capsys.readouterr().out)
    assert [("restore", "rolled_back")] == [
        (st["name"], st["status"]) for st in run["steps"] if st["phase"] == "rollback"
    ]
    url = f"http://{server.http_url}/v2/models/digits/config"
    with urllib.request.urlopen(url, timeout=10) as resp:
        served = json.loads(resp.read())["parameters"]
    assert ("1", "0") == (served["delay_ms"]["string_value"], served["error_rate"]["string_value"])


def test_cli_restore_plans_in_a_dry_run_then_restores_and_verifies(
    triton_factory: Callable[..., LocalTriton],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`model restore --dry-run` changes nothing; without it the files return, verified."""
    repo = copy_repository(tmp_path)
    weights = repo / "digits" / "1" / "weights.npz"
    good = weights.read_bytes()
    write_backup(repo / "digits", manifest_of(repo), tmp_path / "backup")
    server = triton_factory(repo=repo)
    config_file = tmp_path / "sentinel.yaml"
    config_file.write_text(json.dumps(config_for(server, repo, tmp_path)))
    truncate(weights)
    damaged = weights.read_bytes()
    base = ["model", "restore", "digits", "--local", "--config", str(config_file), "--json"]
    assert 0 == cli_main([*base, "--dry-run"])
    assert damaged == weights.read_bytes()
    assert "planned" == json.loads(capsys.readouterr().out)["status"]
    assert 0 == cli_main(base)
    assert good == weights.read_bytes()
    assert "succeeded" == json.loads(capsys.readouterr().out)["status"]
