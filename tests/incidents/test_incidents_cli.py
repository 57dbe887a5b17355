"""`sentinel incidents` and `sentinel silence` against a real state directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel.base.audit import entries
from sentinel.base.clock import FakeClock
from sentinel.base.db import open_db
from sentinel.cli import main
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.vocabulary.findings import Finding, Severity, Subject


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sentinel.yaml"
    path.write_text("pod: pod-a\nstate_dir: state\n", encoding="utf-8")
    return path


def test_silence_add_list_expire(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """add prints the id, list shows it, expire ends it; both acts are audited."""
    code = main(
        [
            "silence",
            "-c",
            str(config),
            "add",
            "-m",
            "model=resnet",
            "-m",
            "kind=~lat.*",
            "--duration",
            "2h",
            "--comment",
            "engine rebuild",
            "--author",
            "erin",
        ]
    )
    silence_id = capsys.readouterr().out.split()[0]
    assert 0 == code
    main(["silence", "-c", str(config), "list", "--json"])
    [listed] = json.loads(capsys.readouterr().out)
    assert (silence_id, ["model=resnet", "kind=~lat.*"], "erin", "active") == (
        listed["id"],
        listed["matchers"],
        listed["created_by"],
        listed["state"],
    )
    assert 0 == main(["silence", "-c", str(config), "expire", silence_id])
    capsys.readouterr()
    main(["silence", "-c", str(config), "list", "--json"])
    assert [] == json.loads(capsys.readouterr().out)
    conn = open_db(config.parent / "state" / "sentinel.db")
    assert [e["action"] for e in entries(conn)] == ["silence.expire", "silence.add"]
    conn.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-m", "model=a", "--duration", "soon", "--comment", "x"], "--duration 'soon'"),
        (["-m", "model", "--duration", "1h", "--comment", "x"], "matcher 'model'"),
        (["-m", "model=a", "--until", "yesterday", "--comment", "x"], "--until 'yesterday'"),
        (["-m", "model=a", "--duration", "1h", "--comment", " "], "comment"),
    ],
)
def test_bad_silence_input_exits_2_and_says_why(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Malformed durations, matchers, times or an empty comment exit 2 with a reason."""
    code = main(["silence", "-c", str(config), "add", *argv])
    assert 2 == code
    assert message in capsys.readouterr().err


def test_expire_unknown_silence_fails(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Expiring an id that does not exist exits 1 naming the id."""
    assert 1 == main(["silence", "-c", str(config), "expire", "nope"])
    assert "'nope'" in capsys.readouterr().err


def test_incidents_lists_the_store(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints what the manager stored; the table names each incident's key."""
    assert 0 == main(["incidents", "-c", str(config)])
    assert "no incidents (no state at" in capsys.readouterr().out
    conn = open_db(config.parent / "state" / "sentinel.db")
    clock = FakeClock()
    manager = IncidentManager(conn, IncidentSettings(), "pod-a", clock)
    t = clock.now()
    [opened] = manager.ingest(
        Finding("gpu_oom", Severity.CRITICAL, Subject("bert", "2"), t, t, "CUDA OOM on bert")
    )
    conn.close()
    assert 0 == main(["incidents", "-c", str(config), "--json"])
    [row] = json.loads(capsys.readouterr().out)
    assert (opened.incident.id, "pod-a/bert:2/gpu_oom", "firing") == (
        row["id"],
        row["key"],
        row["status"],
    )
    main(["incidents", "-c", str(config)])
    assert "pod-a/bert:2/gpu_oom" in capsys.readouterr().out


def test_incidents_with_a_broken_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad config file is reported as FILE:LINE and exit code 2."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("pod: a\nincidents:\n  resolve_hold_s: -5\n", encoding="utf-8")
    assert 2 == main(["incidents", "-c", str(bad)])
    assert f"{bad}:3: incidents.resolve_hold_s" in capsys.readouterr().err
