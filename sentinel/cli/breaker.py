"""`sentinel breaker status|reset`: the circuit breaker that stops all automation."""

from __future__ import annotations

import argparse
import json
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
    # read straight from the state database: it is the breaker's only home
    with common.session(args, local=True) as s:
        if s is None:
            return 2
        print(json.dumps(s.engine().history.breaker(), indent=2, default=str))
        return 0
