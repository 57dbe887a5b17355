"""`sentinel playbook validate|schema|list|show|run|test`.

``run`` goes through the daemon's control API when one is running (so its
locks, budgets and breaker apply); ``--local`` runs in-process against the
same SQLite state. ``test`` plans a run for a recorded incident: nothing is
called, nothing is written outside a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from sentinel.base.yamlsource import InvalidFile
from sentinel.cli import support as common
from sentinel.cli.config_load import BAD_INPUT, load_or_report, print_problems
from sentinel.cli.progress import RunProgress
from sentinel.runbook.schema import json_schema, load_playbook
from sentinel.runbook.targets import target_of
from sentinel.vocabulary.ports import PlaybookService


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("playbook", help="validate, list, show, run and test playbooks")
    psub = p.add_subparsers(dest="playbook_command", metavar="ACTION", required=True)

    v = psub.add_parser("validate", help="check playbook files; exit 0 if valid, 2 if not")
    v.add_argument("paths", nargs="+", metavar="PATH")
    v.set_defaults(handler=_validate)

    s = psub.add_parser("schema", help="print the playbook JSON Schema (for editors)")
    s.set_defaults(handler=_schema)

    ls = psub.add_parser("list", help="the playbooks in the config's playbook folders")
    common.add_config_args(ls, local_flag=False)
    ls.add_argument("--json", action="store_true", help="JSON output")
    ls.set_defaults(handler=_list)

    show = psub.add_parser("show", help="one playbook, as loaded")
    common.add_config_args(show)
    show.add_argument("name")
    show.set_defaults(handler=_show)

    run = psub.add_parser("run", help="run a playbook now (through the daemon, or --local)")
    common.add_config_args(run)
    run.add_argument("name")
    run.add_argument("--target", action="append", default=[], metavar="K=V", required=True)
    run.add_argument("--param", action="append", default=[], metavar="K=V")
    run.add_argument("--dry-run", action="store_true", help="plan and record; call nothing")
    run.add_argument("--json", action="store_true", help="JSON output")
    run.add_argument(
        "--quiet", "-q", action="store_true", help="no step progress on stderr while waiting"
    )
    run.set_defaults(handler=_run)

    test = psub.add_parser("test", help="print the plan for a recorded incident (no side effects)")
    common.add_config_args(test, local_flag=False)
    test.add_argument("name")
    test.add_argument("--incident", required=True, metavar="FILE.json")
    test.add_argument(
        "--model-config", metavar="FILE.json", help="the model's config as Triton serves it"
    )
    test.add_argument("--param", action="append", default=[], metavar="K=V")
    test.add_argument("--json", action="store_true", help="JSON output")
    test.set_defaults(handler=_test)


def _validate(args: argparse.Namespace) -> int:
    bad = 0
    for raw in args.paths:
        paths = sorted(Path(raw).glob("*.y*ml")) if Path(raw).is_dir() else [Path(raw)]
        for path in paths:
            try:
                lp = load_playbook(path)
            except InvalidFile as exc:
                bad += 1
                print_problems(exc)
                continue
            print(f"{path}: ok ({lp.playbook.name}, {len(lp.playbook.steps)} steps)")
    return BAD_INPUT if bad else 0


def _schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def _list(args: argparse.Namespace) -> int:
    """The playbook files the daemon would load (overrides applied); no daemon needed."""
    from sentinel.runbook.schema import load_dirs
    from sentinel.runbook.service import describe

    config = load_or_report(args.config)
    if config is None:
        return BAD_INPUT
    found, problems = load_dirs(list(config.playbooks.dirs), config.playbooks.overrides)
    for problem in problems:
        print(problem, file=sys.stderr)
    items = [describe(name, found[name]) for name in sorted(found)]
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print("no playbooks in " + ", ".join(str(d) for d in config.playbooks.dirs))
    for item in items:
        kinds = ",".join(item["triggers"]) or "manual"
        print(f"{item['name']:<22} {item['mode']:<8} {kinds:<40} {item['description']}")
    return 0


def _show(args: argparse.Namespace) -> int:
    with common.session(args, local=True, scratch=True) as s:
        if s is None:
            return 2
        lp = s.engine().playbooks.get(args.name)
        if lp is None:
            print(f"no playbook named {args.name!r}", file=sys.stderr)
            return 2
        print(f"# {lp.path}  sha256 {lp.sha256}")
        print(Path(lp.path).read_text(encoding="utf-8"), end="")
        return 0


def _run(args: argparse.Namespace) -> int:
    try:
        target = common.pairs(args.target, "--target")
        params = common.pairs(args.param, "--param")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    body = {"target": target, "params": params, "dry_run": args.dry_run}
    with common.session(args) as s:
        if s is None:
            return 2

        async def local(svc: PlaybookService) -> dict[str, Any]:
            return await svc.run(args.name, target, params, args.dry_run, common.local_actor())

        since = time.time() - 1.0  # a run started by this call is at least this recent
        with contextlib.ExitStack() as stack:
            if not args.quiet:
                stack.enter_context(RunProgress(s.recent_runs, args.name, since, sys.stderr))
            path = f"/v1/playbooks/{args.name}/run"
            result = s.call("POST", path, local, body, needs_triton=True)
        if result is None:
            return s.code
        common.print_run(result, as_json=args.json)
        return 0 if result.get("status") in ("succeeded", "planned") else 1


def _test(args: argparse.Namespace) -> int:
    try:
        incident = common.incident_from_file(Path(args.incident))
        model_config: dict[str, Any] = {}
        if args.model_config:
            model_config = common.json_file(Path(args.model_config), "--model-config")
        params = common.pairs(args.param, "--param")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    with common.session(args, local=True, scratch=True) as s:
        if s is None:
            return 2
        engine = s.engine(model_config={incident.subject.model or "": model_config})
        if args.name not in engine.playbooks:
            print(f"no playbook named {args.name!r}", file=sys.stderr)
            return 2
        result = asyncio.run(
            engine.run_manual(
                args.name,
                target_of(incident),
                params,
                dry_run=True,
                actor="playbook-test",
                incident=incident,
            )
        )
        common.print_run(result.as_dict(), as_json=args.json)
        return 0
