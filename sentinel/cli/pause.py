"""`sentinel pause|resume|pauses`: stop sentinel's automation for a while, and start it again.

    sentinel pause [--model M] [--playbook P] --for 2h --reason "engine rebuild"
    sentinel resume [ID]          (no ID: every active pause)
    sentinel pauses [--all] [--json]

Pauses live in the state database, so these work on it directly (as `sentinel silence`
does): the daemon's executor reads them before each automatic run, and a pause made
while the daemon is down holds when it starts. Each is audited. The API has the same
(``POST/GET /v1/pauses``, ``DELETE /v1/pauses/{id}``).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time

from sentinel.base.audit import audit
from sentinel.base.db import open_db, open_read_only
from sentinel.cli.config_load import add_config_arg, load_or_report
from sentinel.cli.incidents import state_db
from sentinel.cli.support import local_actor
from sentinel.runbook.pauses import Pause, PauseError, PauseStore, parse_for


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pause", help="stop automatic playbook runs for a while (all, or some)")
    add_config_arg(p, "config file (its state_dir holds the database)")
    p.add_argument("--model", default=None, help="only runs on this model (default: any)")
    p.add_argument("--playbook", default=None, help="only this playbook (default: any)")
    p.add_argument("--for", dest="for_", required=True, help="how long, e.g. 30m, 2h, 1d")
    p.add_argument("--reason", required=True, help="why (it is in every page meanwhile)")
    p.set_defaults(handler=_pause)
    r = sub.add_parser("resume", help="end a pause now (no ID: every active pause)")
    add_config_arg(r, "config file (its state_dir holds the database)")
    r.add_argument("id", nargs="?", default=None, help="the pause's id (see `sentinel pauses`)")
    r.set_defaults(handler=_resume)
    ls = sub.add_parser("pauses", help="active pauses of the automation")
    add_config_arg(ls, "config file (its state_dir holds the database)")
    ls.add_argument("--all", action="store_true", help="include ended ones")
    ls.add_argument("--json", action="store_true", help="JSON output")
    ls.set_defaults(handler=_list)


def _open(args: argparse.Namespace, read_only: bool = False) -> sqlite3.Connection | None:
    """The state database (None after printing the config's problems); ``read_only``:
    opened read-only, and an in-memory empty one where there is no file (never created)."""
    config = load_or_report(args.config)
    if config is None:
        return None
    if config.playbooks.paused:
        print(
            "note: playbooks.paused is set in this config: the pod is paused regardless",
            file=sys.stderr,
        )
    if read_only:
        return open_read_only(state_db(config)) or open_db(":memory:")
    return open_db(state_db(config))


def _pause(args: argparse.Namespace) -> int:
    now = time.time()
    actor = local_actor()
    try:
        duration = parse_for(args.for_)
    except PauseError as exc:
        print(f"--{exc}", file=sys.stderr)
        return 2
    conn = _open(args)
    if conn is None:
        return 2
    try:
        pause = PauseStore(conn).add(
            model=args.model,
            playbook=args.playbook,
            duration_s=duration,
            reason=args.reason,
            created_by=actor,
            now=now,
        )
    except PauseError as exc:
        print(f"pause refused: {exc}", file=sys.stderr)
        return 2
    audit(conn, actor, "pause.add", pause.id, "ok", {"pause": pause.to_dict(now)}, at=now)
    print(_line(pause, now))
    return 0


def _resume(args: argparse.Namespace) -> int:
    now = time.time()
    actor = local_actor()
    conn = _open(args)
    if conn is None:
        return 2
    store = PauseStore(conn)
    if args.id is None:
        ended = store.resume_all(actor, now)
    else:
        try:
            ended = [store.resume(args.id, actor, now)]
        except KeyError:
            print(f"no active pause with id {args.id!r}", file=sys.stderr)
            return 1
    for pause in ended:
        audit(conn, actor, "pause.resume", pause.id, "ok", {"scope": pause.scope}, at=now)
        print(f"{pause.id}  resumed  {pause.scope}")
    if not ended:
        print("no active pauses")
    return 0


def _list(args: argparse.Namespace) -> int:
    conn = _open(args, read_only=True)
    if conn is None:
        return 2
    now = time.time()
    items = PauseStore(conn).list(now, include_ended=args.all)
    if args.json:
        print(json.dumps([p.to_dict(now) for p in items], indent=1))
        return 0
    if not items:
        print("no pauses")
    for pause in items:
        print(_line(pause, now))
    return 0


def _line(pause: Pause, now: float) -> str:
    state = "active" if pause.active(now) else "ended"
    return (
        f"{pause.id}  {state:<6} {pause.scope:<32} until {_utc(pause.ends_at)}  "
        f"by {pause.created_by}: {pause.reason}"
    )


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
