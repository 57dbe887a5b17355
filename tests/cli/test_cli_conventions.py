"""What every command shares: -c/--config and $SENTINEL_CONFIG, --json on reads, read-only
reads, a closed pipe, NO_COLOR, shell completion, and imports only of what it uses."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_config_files import write_config

from sentinel.base import db
from sentinel.base.logging import configure
from sentinel.cli import COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[2]
NO_CONFIG = {
    ("playbook", "validate"),
    ("playbook", "schema"),
    ("model", "verify"),
    ("demo",),
    ("completion",),
}
"""Commands that read neither a config nor the state (files named on the command line)."""
READS = [
    ("incidents",),
    ("runs",),
    ("runs", "show"),
    ("playbook", "list"),
    ("playbook", "run"),
    ("playbook", "test"),
    ("config", "check"),
    ("gpu",),
    ("silence", "list"),
    ("pauses",),
    ("breaker", "status"),
    ("model", "verify"),
    ("replay",),
    ("run",),
]
"""Commands whose answer is data: each takes --json."""


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command of the parser, with its words."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs or path == ("runs",):  # `runs` runs alone and has actions
        yield path, parser
    for sub in subs:
        for name, child in sub.choices.items():
            yield from leaves(child, (*path, name))


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        "state_dir: state\n"
        "api: {bind: 127.0.0.1, port: 9}\n"
        "triton: {url: '127.0.0.1:9', protocol: http, timeout_s: 500ms}\n",
    )


def test_every_config_reading_command_takes_c_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each command but those on files alone has -c/--config, defaulting to $SENTINEL_CONFIG."""
    monkeypatch.setenv("SENTINEL_CONFIG", "/etc/sentinel/from-env.yaml")
    without = []
    for path, parser in leaves(build_parser()):
        opts = options(parser)
        if path in NO_CONFIG:
            assert "--config" not in opts, path
            continue
        if "--config" not in opts:
            without.append(path)
            continue
        assert opts["-c"] is opts["--config"], path
        # an action's copy (`runs show -c`) keeps its group's value when left out
        assert opts["--config"].default in ("/etc/sentinel/from-env.yaml", argparse.SUPPRESS)
    assert [] == without


def test_every_read_command_takes_json() -> None:
    """Commands whose answer is data take --json."""
    parsers = dict(leaves(build_parser()))
    assert [] == [path for path in READS if "--json" not in options(parsers[path])]


def test_every_command_is_in_the_dispatch_table() -> None:
    """Each module's commands are listed in COMMANDS (so `sentinel X` finds its module)."""
    full = build_parser()
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(COMMANDS) == sorted(sub.choices)


def test_the_environment_names_the_config(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without -c, $SENTINEL_CONFIG is the config (its state_dir is where state is looked for)."""
    monkeypatch.setenv("SENTINEL_CONFIG", str(config))
    assert 0 == main(["incidents"])
    assert f"no state at {config.parent / 'state' / 'sentinel.db'}" in capsys.readouterr().out
    assert 0 == main(["config", "check"])
    assert f"{config}: ok" == capsys.readouterr().out.strip()


def test_config_check_json(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """config check --json prints ok and each problem with file, line and field."""
    assert 0 == main(["config", "check", "-c", str(config), "--json"])
    assert {"file": str(config), "ok": True, "problems": []} == json.loads(capsys.readouterr().out)
    config.write_text("gpu:\n  interval_s: soon\n", encoding="utf-8")
    assert 2 == main(["config", "check", "-c", str(config), "--json"])
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert (str(config), 2, "gpu.interval_s") == (
        problem["file"],
        problem["line"],
        problem["field"],
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["incidents"],
        ["incidents", "--json"],
        ["runs", "--local"],
        ["runs", "--local", "--json"],
        ["silence", "list"],
        ["silence", "list", "--json"],
        ["pauses"],
        ["pauses", "--json"],
        ["breaker", "status"],
        ["breaker", "status", "--json"],
        ["playbook", "list"],
    ],
)
def test_read_commands_create_no_state(
    config: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """A read command without a state database answers (empty) and creates nothing."""
    assert 0 == main([*argv, "-c", str(config)])
    out = capsys.readouterr().out
    if "--json" in argv:
        assert json.loads(out) in (
            [],
            {"open": False, "opened_at": None, "reason": ""} | {"reset_by": None},
        )
    assert not (config.parent / "state").exists()


def test_runs_show_without_state_says_so(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`runs show ID --local` without a database says there is no such run, creating none."""
    assert 2 == main(["runs", "show", "abc", "--local", "-c", str(config)])
    assert "no run with id 'abc'" in capsys.readouterr().err
    assert not (config.parent / "state").exists()


def test_read_commands_do_not_migrate_an_existing_database(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database at an older schema is refused in one line, and left as it was."""
    monkeypatch.setitem(
        db._migrations, "cli_test_owner", ["CREATE TABLE a (x)", "CREATE TABLE b (x)"]
    )
    state = config.parent / "state"
    state.mkdir()
    path = state / "sentinel.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_versions (owner TEXT PRIMARY KEY, version INTEGER)")
    conn.execute("INSERT INTO schema_versions VALUES ('cli_test_owner', 1)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    assert 1 == main(["incidents", "-c", str(config)])
    assert "(schema of cli_test_owner); start the daemon once" in capsys.readouterr().err
    assert before == path.read_bytes()


def test_playbook_list_reads_files_without_a_daemon(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """playbook list names the playbooks in the config's folders; no daemon answers here."""
    assert 0 == main(["playbook", "list", "-c", str(config), "--json"])
    [item] = json.loads(capsys.readouterr().out)
    assert ("halve", ["latency_spike"], ["halve"]) == (
        item["name"],
        item["triggers"],
        item["steps"],
    )
    assert 0 == main(["playbook", "list", "-c", str(config)])
    assert capsys.readouterr().out.startswith("halve ")


def run_sentinel(*argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "sentinel", *argv],
        capture_output=kwargs.pop("capture_output", True),  # type: ignore[arg-type]
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    """`sentinel ... | head -1` with the reader gone: no traceback, no error lines."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes a byte
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "sentinel", "playbook", "schema"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=REPO,
        )
    finally:
        os.close(write_end)
    assert "" == proc.stderr
    assert 1 == proc.returncode


def test_no_color_turns_console_colors_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Console logs carry ANSI colors, unless NO_COLOR is set."""
    import structlog

    outputs = []
    for no_color in ("", "1"):
        monkeypatch.setenv("NO_COLOR", no_color)
        stream = io.StringIO()
        configure("info", "console", stream=stream)
        structlog.get_logger("t").warning("something_happened", detail="x")
        outputs.append(stream.getvalue())
    structlog.reset_defaults()
    assert ("\x1b[" in outputs[0], "\x1b[" in outputs[1]) == (True, False)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_name_commands_and_options(shell: str) -> None:
    """`sentinel completion SHELL` prints a script naming the commands and their options."""
    proc = run_sentinel("completion", shell)
    assert 0 == proc.returncode, proc.stderr
    for word in ("incidents", "playbook", "config", "json"):  # fish writes `-l json`
        assert word in proc.stdout
    if shell == "bash" and shutil.which("bash"):
        check = subprocess.run(["bash", "-n"], input=proc.stdout, text=True, capture_output=True)
        assert "" == check.stderr


HEAVY = ("numpy", "grpc", "tritonclient", "aiohttp", "httpx", "prometheus_client", "structlog")


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["config", "check", "-c", "examples/sentinel.yaml"], ["--help"]],
)
def test_quick_commands_import_nothing_heavy(argv: list[str]) -> None:
    """--version, --help and config check load none of the daemon's heavy libraries."""
    code = (
        "import sys\n"
        "from sentinel.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    assert "[]" == proc.stderr.strip().splitlines()[-1], proc.stderr
