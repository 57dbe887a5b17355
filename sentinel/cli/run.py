"""`sentinel run --config FILE [--once --json]`: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import sys

from sentinel.base import logging as sentinel_logging
from sentinel.cli.config_load import BAD_INPUT, add_config_arg, load_or_report
from sentinel.config import Config
from sentinel.vocabulary.samples import to_record


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the daemon (probes, detectors, playbooks, paging)")
    add_config_arg(p)
    p.add_argument("--once", action="store_true", help="one round of every probe, then exit")
    p.add_argument("--json", action="store_true", help="with --once: print samples as JSON")
    p.add_argument("--dry-run", action="store_true", help="plan playbooks, act on nothing")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return BAD_INPUT
    if args.dry_run:
        config = config.model_copy(update={"dry_run": True})
    from sentinel.base.db import StateError
    from sentinel.wiring import ConfigError

    try:
        if args.once:
            # keep stdout for the result: logs go to stderr
            sentinel_logging.configure(config.logging.level, "json", stream=sys.stderr)
            return asyncio.run(_once(config, args.json))
        sentinel_logging.configure(config.logging.level, config.logging.format)
        return asyncio.run(_forever(config))
    except ConfigError as exc:
        print(f"{args.config or '<defaults>'}: {exc}", file=sys.stderr)
        return 2
    except StateError as exc:  # str() names the file: one line, no traceback
        print(f"sentinel: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno not in _CANNOT_LISTEN:
            raise
        print(f"{args.config or '<defaults>'}: {_listen_problem(config, exc)}", file=sys.stderr)
        return 2


_CANNOT_LISTEN = {
    errno.EADDRINUSE: "the port is already in use",
    errno.EACCES: "permission denied",
    errno.EADDRNOTAVAIL: "no such local address",
}


def _listen_problem(config: Config, exc: OSError) -> str:
    """One line naming the setting whose address could not be bound (a busy port)."""
    why = _CANNOT_LISTEN[exc.errno or 0]
    for name, section in (("api", config.api), ("metrics", config.metrics)):
        if f"', {section.port}" in str(exc):  # asyncio names ('bind', port) in its message
            return (
                f"{name}.port: cannot listen on {section.bind}:{section.port}: {why} "
                f"(choose another {name}.port, or SENTINEL_{name.upper()}__PORT)"
            )
    return f"cannot listen: {exc.strerror or exc}"


async def _once(config: Config, as_json: bool) -> int:
    from sentinel.wiring import build

    async with build(config, serve_api=False, serve_metrics=False) as sentinel:
        samples = await sentinel.daemon.once()
    if as_json:
        print(json.dumps([to_record(s) for s in samples], indent=2, default=str))
    else:
        for s in samples:
            print(to_record(s))
    return 0


async def _forever(config: Config) -> int:
    from sentinel.wiring import build

    async with build(config) as sentinel:
        sentinel.daemon.install_signal_handlers()
        await sentinel.daemon.run()
    return 0
