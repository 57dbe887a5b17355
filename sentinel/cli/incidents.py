"""`sentinel incidents` (not built yet)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("incidents", help="(not built yet)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    print("sentinel incidents: not built yet", file=sys.stderr)
    return 1
