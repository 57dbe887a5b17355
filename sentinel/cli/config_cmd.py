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
    from sentinel.runbook.schema import load_dirs

    dirs = list(config.playbooks.dirs)
    found, before = load_dirs(dirs)
    _, after = load_dirs(dirs, overrides)
    names = {lp.path: name for name, lp in found.items()}
    data = load_yaml(read_text(path), path)
    out = []
    for problem in after:
        if problem in before:
            continue  # the playbook's own problem, not the override's
        name, field = _override_field(problem, names)
        where = ("playbooks", "overrides", name, *(field.split(".") if field else ()))
        dotted = ".".join(["playbooks.overrides", name, *([field] if field else [])])
        message = problem.message
        if problem.file != "config":
            message += f" (in {problem.file})"
        if field and problem.field == "overrides":
            message = message.partition(": ")[2] or message
        out.append(Problem(path, line_of(data, where), dotted, message))
    return out


def _override_field(problem: Problem, names: dict[str, str]) -> tuple[str, str]:
    """(playbook name, dotted field inside its override) of a problem an override made."""
    if problem.file == "config":  # "playbooks.overrides.NAME": no such playbook
        return problem.field.removeprefix("playbooks.overrides."), ""
    name = names.get(problem.file) or Path(problem.file).stem
    if problem.field == "overrides":  # "steps.nope: no step of that name to override"
        field, sep, _ = problem.message.partition(": ")
        return name, field if sep else ""
    return name, problem.field


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
