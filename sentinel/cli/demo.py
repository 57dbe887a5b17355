"""`sentinel demo`: the whole loop on a real local Triton with scripted faults."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run sentinel against a real local Triton and inject faults (needs the demo extra)",
    )
    p.add_argument(
        "--out", default="demo-report", help="folder for the report (default: ./demo-report)"
    )
    p.add_argument("--keep", action="store_true", help="keep the demo's working folder")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from sentinel.demo.scenario import Demo
    from sentinel.testing.triton_local import TritonNotInstalled

    demo = Demo(Path(args.out).resolve(), sys.stdout, keep=args.keep)
    try:
        return asyncio.run(demo.run())
    except TritonNotInstalled as exc:
        print(f"sentinel demo: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("\nsentinel demo: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
