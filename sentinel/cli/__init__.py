"""The `sentinel` command. Each command group lives in its own module here and
registers itself through ``register(subparsers)``; a command's handler returns
its exit code.

Exit codes: 0 ok, 1 failed, 2 bad input (config, playbook, arguments), 3 a
needed facility is unavailable (e.g. no NVML).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# numpy's BLAS starts a thread per core at import (15 idle threads on a 16-core GPU node);
# the canaries' arithmetic is tiny, so one is plenty. A value set by the user wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import structlog  # noqa: E402

from sentinel import __version__  # noqa: E402 -- after the BLAS thread limit
from sentinel.base.db import StateError  # noqa: E402

# Until a command configures logging, a warning (a deprecated config key, say) goes to
# stderr: stdout is for what the command prints (`--json` output must stay parseable).
if not structlog.is_configured():
    structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))

# Command modules, in the order `sentinel --help` lists them.
COMMAND_MODULES = (
    "run",
    "demo",
    "config_cmd",
    "gpu",
    "record",
    "replay",
    "playbook",
    "runs",
    "incidents",
    "silence",
    "pause",
    "breaker",
    "model",
    "golden",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentinel",
        description="Watches Triton and its GPUs, fixes what it safely can, pages when needed.",
    )
    parser.add_argument("--version", action="version", version=f"sentinel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"sentinel.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except StateError as exc:  # any command that opens the database: one line, no traceback
        print(f"sentinel: {exc}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    return code
