"""`sentinel config check FILE`: validate a config, one line per problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sentinel.base.yamlsource import InvalidFile, Problem, line_of, load_yaml, read_text
from sentinel.cli.config_load import BAD_INPUT, load_or_report
from sentinel.config import Config, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="check a config file")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check_p = csub.add_parser("check", help="validate FILE; exit 0 if valid, 2 if not")
    check_p.add_argument("file")
    check_p.set_defaults(handler=_check)
    show = csub.add_parser("show", help="print the effective config (secrets hidden) as JSON")
    show.add_argument("file", nargs="?")
    show.set_defaults(handler=_show)


def check(path: str) -> list[Problem]:
    """Every problem of the config at ``path``, including playbook overrides that would
    break the playbook they patch (the daemon would drop that playbook)."""
    try:
        config = load_config(path)
    except InvalidFile as exc:
        return list(exc.problems)
    return override_problems(config, path)


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
    problems = check(args.file)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return BAD_INPUT
    print(f"{args.file}: ok")
    return 0


def _show(args: argparse.Namespace) -> int:
    config = load_or_report(args.file)
    if config is None:
        return BAD_INPUT
    print(config.model_dump_json(indent=2))
    return 0
