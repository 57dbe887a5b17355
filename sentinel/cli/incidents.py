"""`sentinel incidents [-c FILE] [--json] [--open] [--limit N]`: list incidents.

Read-only: the state database is opened read-only, and a missing one is reported (or
an empty JSON list printed), never created."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sentinel.cli.config_load import add_config_arg, load_or_report

if TYPE_CHECKING:
    from sentinel.config import Config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("incidents", help="list incidents from the state directory")
    add_config_arg(p, "config file (its state_dir holds the database)")
    p.add_argument("--json", action="store_true", help="one JSON array on stdout")
    p.add_argument("--open", action="store_true", help="only firing/mitigating incidents")
    p.add_argument("--limit", type=int, default=50, help="at most this many, newest first")
    p.set_defaults(handler=_handle)


def state_db(config: Config) -> Path:
    from sentinel.base import db

    return db.path_in(config.state_dir)


def open_state(config: Config) -> sqlite3.Connection | None:
    """The state database, read-only, if it exists (None: sentinel never ran with this
    state_dir). Nothing is created or migrated."""
    from sentinel.base import db

    return db.open_read_only(state_db(config))


def _handle(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("--limit: must be at least 1", file=sys.stderr)
        return 2
    config = load_or_report(args.config)
    if config is None:
        return 2
    import sentinel.base.audit
    import sentinel.incidents.silences  # noqa: F401 -- registers its tables
    from sentinel.incidents.store import IncidentStore

    conn = open_state(config)
    items = IncidentStore(conn).list(args.limit, not args.open) if conn is not None else []
    if args.json:
        print(json.dumps([i.to_dict() for i in items], indent=1, default=str))
        return 0
    if not items:
        print("no incidents" + ("" if conn is not None else f" (no state at {state_db(config)})"))
        return 0
    print(f"{'ID':<16}  {'STATUS':<10}  {'SEV':<8}  {'UPDATED (UTC)':<19}  KEY / SUMMARY")
    for i in items:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(i.updated_at))
        muted = " [silenced]" if i.silenced_by else (" [inhibited]" if i.inhibited_by else "")
        print(f"{i.id:<16}  {i.status.value:<10}  {i.severity.value:<8}  {stamp:<19}  {i.key}")
        print(f"{'':<60}{i.summary}{muted}")
    return 0
