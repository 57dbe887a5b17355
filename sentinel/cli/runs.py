"""`sentinel runs [--json]`: recent playbook runs, newest first, with their steps;
`sentinel runs show ID` one run with every step, its output and evidence;
`sentinel runs cancel ID` stops a run under way in the daemon (its applied steps are
rolled back); `sentinel runs approve|reject ID` decides a run waiting for approval."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any
from urllib.parse import quote

from sentinel.cli import support as common
from sentinel.cli.config_load import add_config_arg
from sentinel.vocabulary.ports import PlaybookService


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("runs", help="recent playbook runs (through the daemon, or --local)")
    common.add_config_args(p)
    p.add_argument("--json", action="store_true", help="JSON output, steps included")
    p.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    p.set_defaults(handler=_handle)
    rsub = p.add_subparsers(dest="runs_command", metavar="ACTION")
    show = rsub.add_parser("show", help="one run: every step, its output and the evidence")
    show.add_argument("id")
    _late_options(show)
    show.set_defaults(handler=_show)
    cancel = rsub.add_parser("cancel", help="cancel a run under way (its changes are undone)")
    cancel.add_argument("id")
    _late_options(cancel)
    cancel.set_defaults(handler=_cancel)
    for verb, helptext in (
        ("approve", "approve a run waiting for approval (mode: approve): it acts now"),
        ("reject", "reject a run waiting for approval: it changes nothing"),
    ):
        decide = rsub.add_parser(verb, help=helptext)
        decide.add_argument("id")
        _late_options(decide)
        decide.set_defaults(handler=_decide, verb=verb)


def _late_options(p: argparse.ArgumentParser) -> None:
    """--config/--local/--json after the action too; left unset they keep the earlier value."""
    add_config_arg(p, suppress=True)
    p.add_argument(
        "--local", action="store_true", default=argparse.SUPPRESS, help="on the state database"
    )
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")


def _show(args: argparse.Namespace) -> int:
    async def local(svc: PlaybookService) -> dict[str, Any]:
        run = svc.run_record(args.id)
        if run is None:
            raise ValueError(f"no run with id {args.id!r}")
        return run

    with common.session(args) as s:
        if s is None:
            return 2
        if s.local:  # read-only: no database is created or migrated
            history = common.read_history(s.config)
            run = history.run(args.id) if history is not None else None
            if run is None:
                print(f"no run with id {args.id!r}", file=sys.stderr)
                return 2
        else:
            run = s.call("GET", f"/v1/runs/{quote(args.id, safe='')}", local)
        if run is None:
            return s.code
        if args.json:
            print(json.dumps(run, indent=2, default=str))
        else:
            print_run_detail(run)
        return 0


def _cancel(args: argparse.Namespace) -> int:
    if getattr(args, "local", False):
        print("runs cancel: a run is under way in the daemon; cancel goes through its API")
        return 2
    with common.session(args) as s:
        if s is None:
            return 2

        async def local(svc: PlaybookService) -> dict[str, Any]:
            return {}  # never: not local

        answer = s.call("POST", f"/v1/runs/{quote(args.id, safe='')}/cancel", local, body={})
        if answer is None:
            return s.code
        print(f"run {args.id}: cancel requested; `sentinel runs show {args.id}` shows its rollback")
        return 0


def _decide(args: argparse.Namespace) -> int:
    if getattr(args, "local", False):
        print(f"runs {args.verb}: the run waits in the daemon; the decision goes through its API")
        return 2
    with common.session(args) as s:
        if s is None:
            return 2

        async def local(svc: PlaybookService) -> dict[str, Any]:
            return {}  # never: not local

        path = f"/v1/runs/{quote(args.id, safe='')}/{args.verb}"
        answer = s.call("POST", path, local, body={})
        if answer is None:
            return s.code
        print(f"run {args.id}: {answer['decision']}")
        return 0


def print_run_detail(run: dict[str, Any]) -> None:
    """Everything recorded about one run, for a person."""
    started = _utc(run["started_at"])
    ended = _utc(run["finished_at"]) if run.get("finished_at") else "-"
    dry = " (dry run)" if run.get("dry_run") else ""
    print(f"run {run['id']}  {run['playbook']}  {run['status']}{dry}")
    print(f"  target   {run['target_key']}  by {run['actor']}  {started} -> {ended}")
    if run.get("incident_id"):
        print(f"  incident {run['incident_id']}")
    if run.get("reason"):
        print(f"  reason   {run['reason']}")
    if run.get("params"):
        print(f"  params   {json.dumps(run['params'], sort_keys=True, default=str)}")
    for step in run.get("steps", []):
        tries = f" x{step['attempts']}" if step.get("attempts", 0) > 1 else ""
        print(
            f"  - {step['phase']:<10} {step['name']:<18} {step['action']:<22} "
            f"{step['status']}{tries}"
        )
        if step.get("params"):
            print(f"      with    {json.dumps(step['params'], sort_keys=True, default=str)}")
        if step.get("output"):
            print(f"      output  {json.dumps(step['output'], sort_keys=True, default=str)}")
        if step.get("reason"):
            print(f"      reason  {step['reason']}")
    for name, value in sorted((run.get("evidence") or {}).items()):
        print(f"  evidence {name}: {json.dumps(value, sort_keys=True, default=str)}")


def _utc(t: float) -> str:
    return f"{datetime.datetime.fromtimestamp(t, datetime.UTC):%Y-%m-%d %H:%M:%S}Z"


def _handle(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("--limit: must be >= 1", file=sys.stderr)
        return 2

    async def local(svc: PlaybookService) -> dict[str, Any]:
        return {"runs": svc.runs(args.limit)}

    with common.session(args) as s:
        if s is None:
            return 2
        if s.local:  # read-only: no database is created or migrated
            history = common.read_history(s.config)
            answer: dict[str, Any] | None = {"runs": history.runs(args.limit) if history else []}
        else:
            answer = s.call("GET", f"/v1/runs?limit={args.limit}", local)
        if answer is None:
            return s.code
        runs: list[dict[str, Any]] = answer["runs"]
        if args.json:
            print(json.dumps(runs, indent=2, default=str))
            return 0
        if not runs:
            print("no runs")
        for run in runs:
            when = datetime.datetime.fromtimestamp(run["started_at"], datetime.UTC)
            dry = " dry-run" if run["dry_run"] else ""
            print(
                f"{when:%Y-%m-%d %H:%M:%S}Z {run['id']} {run['playbook']:<20} "
                f"{run['target_key']:<24} {run['status']:<11} {run['actor']}{dry}"
            )
            if run.get("reason"):
                print(f"    {run['reason']}")
        return 0
