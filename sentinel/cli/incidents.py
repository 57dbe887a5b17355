"""`sentinel incidents [--config FILE] [--json] [--open] [--limit N]`: list incidents."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path

import sentinel.base.audit
import sentinel.incidents.silences  # noqa: F401 -- registers its tables
from sentinel.base import db
from sentinel.base.db import open_db
from sentinel.cli.config_load import load_or_report
from sentinel.config import Config
from sentinel.incidents.store import IncidentStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("incidents", help="list incidents from the state directory")
    p.add_argument("--config", "-c", help="config file (its state_dir holds the database)")
    p.add_argument("--json", action="store_true", help="one JSON array on stdout")
    p.add_argument("--open", action="store_true", help="only firing/mitigating incidents")
    p.add_argument("--limit", type=int, default=50, help="at most this many, newest first")
    p.set_defaults(handler=_handle)


def state_db(config: Config) -> Path:
    return db.path_in(config.state_dir)


def open_state(config: Config) -> sqlite3.Connection | None:
    """The state database if it exists (None: sentinel never ran with this state_dir)."""
    path = state_db(config)
    return open_db(path) if path.exists() else None


def _handle(args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("--limit: must be at least 1", file=sys.stderr)
        return 2
    config = load_or_report(args.config)
    if config is None:
        return 2
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
