"""`sentinel model backup|verify` on real files and a real state database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from integrity_helpers import copy_repository, manifest_of, truncate

from sentinel.base.db import open_db, path_in
from sentinel.cli import main as cli_main
from sentinel.probes.model_files import ManifestStore


def state_with_manifest(tmp: Path) -> tuple[Path, Path]:
    """A repository copy, a config naming it, and digits:1's manifest in the state db."""
    repo = copy_repository(tmp)
    conn = open_db(path_in(tmp / "state"))
    ManifestStore(conn).add(manifest_of(repo))
    conn.close()
    config = tmp / "sentinel.yaml"
    config.write_text(
        json.dumps(
            {
                "state_dir": str(tmp / "state"),
                "model_files": {"repository": str(repo), "models": ["digits"]},
            }
        )
    )
    return repo, config


def test_backup_copies_known_good_versions_that_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`model backup --to DIR` writes each known-good version; `model verify DIR` passes."""
    _, config = state_with_manifest(tmp_path)
    assert 0 == cli_main(["model", "backup", "--config", str(config), "--to", str(tmp_path / "b")])
    assert "digits:1  3 files" in capsys.readouterr().out
    assert 0 == cli_main(["model", "verify", str(tmp_path / "b"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert [("digits", "1", True)] == [(r["model"], r["version"], r["ok"]) for r in report]


def test_backup_refuses_damaged_repository_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files that no longer match their manifest are not backed up (exit 1, nothing written)."""
    repo, config = state_with_manifest(tmp_path)
    truncate(repo / "digits" / "1" / "weights.npz")
    assert 1 == cli_main(["model", "backup", "--config", str(config), "--to", str(tmp_path / "b")])
    assert "NOT backed up" in capsys.readouterr().err
    assert 2 == cli_main(["model", "verify", str(tmp_path / "b")])


def test_recorded_scans_replay_into_the_same_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sentinel record` writes model_files samples; `sentinel replay` finds the damage."""
    repo, config = state_with_manifest(tmp_path)
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "gpu": {"source": "off"}}))
    truncate(repo / "digits" / "1" / "weights.npz")
    out = tmp_path / "rec.jsonl"
    assert 0 == cli_main(["record", "--config", str(config), "--out", str(out), "--duration", "1s"])
    assert "model_files" == json.loads(out.read_text().splitlines()[0])["type"]
    capsys.readouterr()
    assert 0 == cli_main(["replay", str(out), "--json"])
    findings = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert ["model_files_changed"] == [f["kind"] for f in findings]
