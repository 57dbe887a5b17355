"""`sentinel run --config FILE [--once --json]`: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from sentinel.base import logging as sentinel_logging
from sentinel.cli.config_load import BAD_INPUT, load_or_report
from sentinel.config import Config
from sentinel.vocabulary.samples import to_record


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the daemon (probes, detectors, playbooks, paging)")
    p.add_argument("--config", "-c", help="config file (default: embedded defaults)")
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
