"""A damaged state database: moved aside with an error naming the file and a fresh one
started (or refused, if so configured); a path that cannot be used is one line, no traceback."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sentinel.base import db
from sentinel.base.audit import audit, entries
from sentinel.base.clock import FakeClock
from sentinel.incidents.manager import IncidentManager
from sentinel.incidents.settings import IncidentSettings
from sentinel.testing import finding

REPO = Path(__file__).resolve().parents[2]


def with_history(path: Path, rows: int = 200) -> None:
    """A sound database holding ``rows`` audit rows (several pages), checkpointed and closed."""
    conn = db.open_db(path)
    for i in range(rows):
        audit(conn, "alice", "silence.add", f"s{i}", "ok", {"note": "n" * 200}, at=float(i))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def moved_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".corrupt-*"))


def damage_header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(b"this is not sqlite" * 6)


def truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def empty(path: Path) -> None:
    os.truncate(path, 0)


@pytest.mark.parametrize("damage", [damage_header, truncate_half, empty])
def test_damaged_database_is_moved_aside_and_a_fresh_one_started(
    db_path: Path, damage: object
) -> None:
    """Garbage header, truncated or zero-length: renamed *.corrupt-*, logged, fresh db works."""
    with_history(db_path)
    assert callable(damage)
    damage(db_path)
    with capture_logs() as logs:
        conn = db.open_db(db_path)
    try:
        audit(conn, "bob", "silence.add", "fresh", "ok")
        assert ["fresh"] == [e["target"] for e in entries(conn)]
    finally:
        conn.close()
    [aside] = moved_aside(db_path)
    [event] = [e for e in logs if e["event"] == "state_db_moved_aside"]
    assert (str(db_path), str(aside), "error") == (
        event["path"],
        event["moved_to"],
        event["log_level"],
    )


def test_sound_database_is_kept(db_path: Path) -> None:
    """A sound database passes the check and keeps its history (nothing moved aside)."""
    with_history(db_path, rows=3)
    conn = db.open_db(db_path)
    try:
        assert 3 == len(entries(conn))
    finally:
        conn.close()
    assert [] == moved_aside(db_path)


def test_refuse_leaves_the_damaged_file_and_names_it(db_path: Path) -> None:
    """state.on_corrupt: refuse raises a StateError naming the file and touches nothing."""
    with_history(db_path)
    damage_header(db_path)
    with pytest.raises(db.StateError, match=str(db_path)):
        db.open_db(db_path, on_corrupt="refuse")
    assert [] == moved_aside(db_path)
    assert db_path.exists()


def run_sentinel(
    folder: Path, config: str, *, drop_root: bool = False
) -> subprocess.CompletedProcess[str]:
    """``sentinel run`` on ``config``; ``drop_root``: without root's power to write anywhere."""
    cfg = folder / "sentinel.yaml"
    cfg.write_text(config, encoding="utf-8")
    prefix: list[str] = []
    if drop_root and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: a read-only folder is writable")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "sentinel", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=folder,
    )


def assert_one_line_naming(proc: subprocess.CompletedProcess[str], path: Path) -> None:
    assert 1 == proc.returncode, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert 1 == len(lines), proc.stderr
    assert str(path) in lines[0]


def test_run_with_a_directory_in_place_of_the_database_is_one_line(tmp_path: Path) -> None:
    """`sentinel run`: a directory named sentinel.db is a one-line error naming it, exit 1."""
    (tmp_path / "state" / "sentinel.db").mkdir(parents=True)
    proc = run_sentinel(tmp_path, f"pod: p\nstate_dir: {tmp_path / 'state'}\n")
    assert_one_line_naming(proc, tmp_path / "state" / "sentinel.db")


def test_run_refusing_a_damaged_database_is_one_line(tmp_path: Path) -> None:
    """`sentinel run` with state.on_corrupt: refuse: one line naming the file, exit 1."""
    path = tmp_path / "state" / "sentinel.db"
    with_history(path, rows=3)
    damage_header(path)
    config = f"pod: p\nstate_dir: {tmp_path / 'state'}\nstate:\n  on_corrupt: refuse\n"
    proc = run_sentinel(tmp_path, config)
    assert_one_line_naming(proc, path)
    assert "damaged" in proc.stderr


def test_run_with_a_read_only_state_dir_is_one_line(tmp_path: Path) -> None:
    """`sentinel run` on a read-only state dir: one line naming the database, exit 1."""
    state = tmp_path / "state"
    with_history(state / "sentinel.db", rows=3)
    state.chmod(0o555)
    try:
        proc = run_sentinel(tmp_path, f"pod: p\nstate_dir: {state}\n", drop_root=True)
    finally:
        state.chmod(0o755)
    assert_one_line_naming(proc, state / "sentinel.db")


def test_one_unreadable_incident_row_does_not_stop_recovery(conn: sqlite3.Connection) -> None:
    """A damaged incident row is logged by id and skipped; the others are recovered."""
    manager = IncidentManager(conn, IncidentSettings(), "pod-a", FakeClock())
    [opened] = manager.ingest(finding("resnet", 1_700_000_000.0))
    with conn:
        conn.execute(
            "INSERT INTO incidents (id, key, status, updated_at, data)"
            " VALUES ('bad1', 'k', 'firing', 0, '{not json')"
        )
    with capture_logs() as logs:
        recovered = manager.recover()
    assert [opened.incident.id] == [inc.id for inc in recovered]
    assert ["bad1"] == [e["id"] for e in logs if e["event"] == "incident_row_unreadable"]


def test_incidents_command_with_a_directory_in_place_of_the_database_is_one_line(
    tmp_path: Path,
) -> None:
    """`sentinel incidents` (any command opening the database) reports it in one line, exit 1."""
    (tmp_path / "state" / "sentinel.db").mkdir(parents=True)
    cfg = tmp_path / "sentinel.yaml"
    cfg.write_text(f"pod: p\nstate_dir: {tmp_path / 'state'}\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "sentinel", "incidents", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
    )
    assert_one_line_naming(proc, tmp_path / "state" / "sentinel.db")
