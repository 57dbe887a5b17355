"""`sentinel silence add|list|expire`: silences and maintenance windows.

    sentinel silence add -m model=resnet -m kind=~latency.* --duration 2h \\
        --comment "engine rebuild" [--author NAME] [--start 2026-11-22T02:00:00Z]
    sentinel silence list [--all] [--json]
    sentinel silence expire ID
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sqlite3
import sys
import time

from sentinel.base.audit import audit
from sentinel.base.db import open_db
from sentinel.base.db import open_read_only as open_db_read_only
from sentinel.cli.config_load import add_config_arg, load_or_report, positive_duration
from sentinel.cli.incidents import state_db
from sentinel.incidents.silences import SilenceError, SilenceStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("silence", help="add, list or expire silences (maintenance windows)")
    add_config_arg(p, "config file (its state_dir holds the database)")
    ssub = p.add_subparsers(dest="silence_command", metavar="ACTION", required=True)
    add = ssub.add_parser("add", help="mute pages for incidents matching all matchers")
    add.add_argument(
        "--matcher",
        "-m",
        action="append",
        required=True,
        help="label matcher: name=value, name!=value, name=~regex, name!~regex",
    )
    add.add_argument("--comment", required=True, help="why (required)")
    add.add_argument("--author", default=None, help="who (default: your user name)")
    add.add_argument("--start", default=None, help="ISO 8601 start (default: now)")
    end = add.add_mutually_exclusive_group(required=True)
    end.add_argument("--duration", help="e.g. 90m, 2h, 1h30m, 1d")
    end.add_argument("--until", help="ISO 8601 end")
    add_config_arg(add, suppress=True)
    add.set_defaults(handler=_add)
    ls = ssub.add_parser("list", help="active and pending silences")
    ls.add_argument("--all", action="store_true", help="include expired ones")
    ls.add_argument("--json", action="store_true", help="JSON output")
    add_config_arg(ls, suppress=True)
    ls.set_defaults(handler=_list)
    ex = ssub.add_parser("expire", help="end a silence now")
    ex.add_argument("id")
    add_config_arg(ex, suppress=True)
    ex.set_defaults(handler=_expire)


def parse_duration(text: str) -> float:
    """``--duration``, as seconds (more than 0); ValueError naming the flag otherwise."""
    try:
        return positive_duration(text)
    except ValueError as exc:
        raise ValueError(f"--duration {text!r}: {exc}") from None


def parse_time(text: str, flag: str) -> float:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{flag} {text!r}: expected ISO 8601, e.g. 2026-11-22T02:00:00Z") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def _open(args: argparse.Namespace) -> sqlite3.Connection | None:
    config = load_or_report(args.config)
    return None if config is None else open_db(state_db(config))


def _add(args: argparse.Namespace) -> int:
    now = time.time()
    author = args.author or getpass.getuser()
    try:
        start = parse_time(args.start, "--start") if args.start else now
        end = (
            start + parse_duration(args.duration)
            if args.duration
            else parse_time(args.until, "--until")
        )
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    conn = _open(args)
    if conn is None:
        return 2
    store = SilenceStore(conn)
    try:
        s = store.add(args.matcher, start, end, author, args.comment, now)
    except SilenceError as exc:
        print(f"silence refused: {exc}", file=sys.stderr)
        return 2
    audit(conn, f"cli:{author}", "silence.add", s.id, "ok", {"silence": s.to_dict()})
    state = s.state(now)
    print(f"{s.id}  {state}  until {_utc(s.ends_at)}  {' '.join(str(m) for m in s.matchers)}")
    return 0


def _list(args: argparse.Namespace) -> int:
    # read-only: a missing database is no silences, and is not created
    config = load_or_report(args.config)
    if config is None:
        return 2
    conn = open_db_read_only(state_db(config))
    now = time.time()
    items = SilenceStore(conn).list(now, include_expired=args.all) if conn is not None else []
    if args.json:
        print(json.dumps([s.to_dict(now) for s in items], indent=1))
        return 0
    if not items:
        print("no silences")
        return 0
    for s in items:
        matchers = " ".join(str(m) for m in s.matchers)
        print(
            f"{s.id}  {s.state(now):<8} {_utc(s.starts_at)} -> {_utc(s.ends_at)}  "
            f"{matchers}  by {s.created_by}: {s.comment}"
        )
    return 0


def _expire(args: argparse.Namespace) -> int:
    conn = _open(args)
    if conn is None:
        return 2
    store = SilenceStore(conn)
    try:
        s = store.expire(args.id, time.time())
    except KeyError:
        print(f"no active silence with id {args.id!r}", file=sys.stderr)
        return 1
    audit(conn, f"cli:{getpass.getuser()}", "silence.expire", s.id, "ok")
    print(f"{s.id}  expired")
    return 0


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
