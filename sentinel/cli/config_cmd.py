"""`sentinel config check [FILE | -c FILE] [--json]`: validate a config, one line per
problem; `sentinel config show [FILE | -c FILE]`: the effective config as JSON. FILE
defaults to ``$SENTINEL_CONFIG``, like every command's ``-c/--config``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

from sentinel.base.yamlsource import InvalidFile, Problem, line_of, load_yaml, read_text
from sentinel.cli.config_load import BAD_INPUT, CONFIG_ENV, add_config_arg, load_or_report
from sentinel.config import Config, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="check a config file, or show the effective config")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check_p = csub.add_parser("check", help="validate FILE; exit 0 if valid, 2 if not")
    check_p.add_argument("file", nargs="?", help="the config (or -c FILE)")
    add_config_arg(check_p)
    check_p.add_argument("--json", action="store_true", help="JSON output: ok and problems")
    check_p.set_defaults(handler=_check)
    show = csub.add_parser("show", help="print the effective config (secrets hidden) as JSON")
    show.add_argument("file", nargs="?", help="the config (or -c FILE; none: the defaults)")
    add_config_arg(show)
    show.set_defaults(handler=_show)


def check(path: str) -> list[Problem]:
    """Every problem of the config at ``path``, including playbook overrides that would
    break the playbook they patch (the daemon would drop that playbook)."""
    try:
        with _logs_off_stdout():
            config = load_config(path)
    except InvalidFile as exc:
        return list(exc.problems)
    return override_problems(config, path)


def _logs_off_stdout() -> contextlib.AbstractContextManager[object]:
    """stdout pointed at stderr while a config loads: a warning it logs (a deprecated key)
    goes through structlog's default printer, which writes to stdout, and stdout is this
    command's answer (`--json`). `sentinel config` does without configuring structlog, so
    that it need not import it (see ``sentinel.cli.LIGHT_COMMANDS``)."""
    return contextlib.redirect_stdout(sys.stderr)


def override_problems(config: Config, path: str) -> list[Problem]:
    """Problems that ``playbooks.overrides`` add to the playbooks they patch, each at the
    override's line in the config and naming the playbook file."""
    overrides = config.playbooks.overrides
    if not overrides:
        return []
    from sentinel.runbook.schema import load_dirs, load_playbook

    _, problems = load_dirs(list(config.playbooks.dirs), overrides)
    data = load_yaml(read_text(path), path)
    own: dict[str, tuple[str, list[Problem]]] = {}  # file -> (name, problems unpatched)
    out = []
    for problem in problems:
        if problem.file == "config":  # "playbooks.overrides.NAME": no such playbook
            name, field = problem.field.removeprefix("playbooks.overrides."), ""
        elif Path(problem.file).is_file():
            if problem.file not in own:
                try:
                    lp = load_playbook(problem.file)
                    own[problem.file] = (lp.playbook.name, [])
                except InvalidFile as exc:
                    own[problem.file] = (Path(problem.file).stem, exc.problems)
            name, unpatched = own[problem.file]
            if name not in overrides or problem in unpatched:
                continue  # the playbook's own problem, not the override's
            field = problem.field
            if field == "overrides":  # "steps.nope: no step of that name to override"
                head, sep, _ = problem.message.partition(": ")
                field = head if sep else ""
        else:
            continue  # a missing folder: the daemon's problem, not an override's
        out.append(_at_override(path, data, name, field, problem))
    return out


def _at_override(path: str, data: object, name: str, field: str, problem: Problem) -> Problem:
    """``problem`` of a patched playbook, placed at its override's line in the config."""
    where = ("playbooks", "overrides", name, *(field.split(".") if field else ()))
    dotted = ".".join(["playbooks.overrides", name, *([field] if field else [])])
    message = problem.message
    if problem.field == "overrides" and field:
        message = message.partition(": ")[2]
    if problem.file != "config":
        message += f" (in {problem.file})"
    return Problem(path, line_of(data, where), dotted, message)


def _check(args: argparse.Namespace) -> int:
    path = args.file or args.config
    if path is None:
        print(f"config check: give FILE, -c FILE or set ${CONFIG_ENV}", file=sys.stderr)
        return BAD_INPUT
    problems = check(path)
    if args.json:
        found = [dataclasses.asdict(p) for p in problems]
        print(json.dumps({"file": path, "ok": not problems, "problems": found}, indent=2))
        return BAD_INPUT if problems else 0
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return BAD_INPUT
    print(f"{path}: ok")
    return 0


def _show(args: argparse.Namespace) -> int:
    with _logs_off_stdout():
        config = load_or_report(args.file or args.config)
    if config is None:
        return BAD_INPUT
    print(config.model_dump_json(indent=2))
    return 0
