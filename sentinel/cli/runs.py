"""`sentinel runs [--json]`: recent playbook runs, newest first, with their steps."""

from __future__ import annotations

import argparse
import datetime
import json
from typing import Any

from sentinel.cli import support as common
from sentinel.vocabulary.ports import PlaybookService


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("runs", help="recent playbook runs (through the daemon, or --local)")
    common.add_config_args(p)
    p.add_argument("--json", action="store_true", help="JSON output, steps included")
    p.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("--limit: must be >= 1")
        return 2

    async def local(svc: PlaybookService) -> dict[str, Any]:
        return {"runs": svc.runs(args.limit)}

    with common.session(args) as s:
        if s is None:
            return 2
        answer = s.call("GET", f"/v1/runs?limit={args.limit}", local)
        if answer is None:
            return s.code
        runs: list[dict[str, Any]] = answer["runs"]
        if args.json:
            print(json.dumps(runs, indent=2, default=str))
            return 0
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
