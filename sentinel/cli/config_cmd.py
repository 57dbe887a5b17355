"""`sentinel config check FILE`: validate a config, one line per problem."""

from __future__ import annotations

import argparse

from sentinel.cli.config_load import BAD_INPUT, load_or_report


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
    if load_or_report(args.file) is None:
        return BAD_INPUT
    print(f"{args.file}: ok")
    return 0


def _show(args: argparse.Namespace) -> int:
    config = load_or_report(args.file)
    if config is None:
        return BAD_INPUT
    print(config.model_dump_json(indent=2))
    return 0
