"""`sentinel config check FILE`: validate a config, one line per problem."""

from __future__ import annotations

import argparse
import sys

from sentinel.base.yamlsource import InvalidFile
from sentinel.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="check a config file")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = csub.add_parser("check", help="validate FILE; exit 0 if valid, 2 if not")
    check.add_argument("file")
    check.set_defaults(handler=_check)
    show = csub.add_parser("show", help="print the effective config (secrets hidden) as JSON")
    show.add_argument("file", nargs="?")
    show.set_defaults(handler=_show)


def _check(args: argparse.Namespace) -> int:
    try:
        load_config(args.file)
    except InvalidFile as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    print(f"{args.file}: ok")
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except InvalidFile as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    print(config.model_dump_json(indent=2))
    return 0
