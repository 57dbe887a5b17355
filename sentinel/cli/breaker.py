"""`sentinel breaker status|reset`: the circuit breaker that stops all automation."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from sentinel.cli import support as common
from sentinel.vocabulary.ports import PlaybookService


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("breaker", help="see or reset the automation circuit breaker")
    bsub = p.add_subparsers(dest="breaker_command", metavar="ACTION", required=True)
    reset = bsub.add_parser("reset", help="close the breaker: automation may act again")
    common.add_config_args(reset)
    reset.set_defaults(handler=_reset)
    status = bsub.add_parser("status", help="is the breaker open, since when and why")
    common.add_config_args(status, local_flag=False)
    status.add_argument("--json", action="store_true", help="JSON output")
    status.set_defaults(handler=_status)


def _reset(args: argparse.Namespace) -> int:
    async def local(svc: PlaybookService) -> dict[str, Any]:
        svc.reset_breaker(common.local_actor())
        return {"breaker": "reset"}

    with common.session(args) as s:
        if s is None:
            return 2
        if s.call("POST", "/v1/breaker/reset", local, {}) is None:
            return s.code
        print("circuit breaker reset: automation may act again")
        return 0


def _status(args: argparse.Namespace) -> int:
    # read straight from the state database (read-only): it is the breaker's only home
    with common.session(args, local=True) as s:
        if s is None:
            return 2
        history = common.read_history(s.config)
        state = history.breaker() if history is not None else CLOSED
        if args.json:
            print(json.dumps(state, indent=2, default=str))
        elif state["open"]:
            print(f"circuit breaker OPEN since {_utc(state['opened_at'])}: {state['reason']}")
            print("automation is stopped; `sentinel breaker reset` once the cause is understood")
        else:
            reset = f" (reset by {state['reset_by']})" if state.get("reset_by") else ""
            print(f"circuit breaker closed{reset}: automation may act")
        return 0


CLOSED: dict[str, Any] = {"open": False, "opened_at": None, "reason": "", "reset_by": None}
"""The breaker's state where no database exists yet (as the history reports a fresh one)."""


def _utc(t: float | None) -> str:
    return "?" if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
