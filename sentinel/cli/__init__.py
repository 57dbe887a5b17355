"""The `sentinel` command. Each command group lives in its own module here and
registers itself through ``register(subparsers)``; a command's handler returns
its exit code.

Only the chosen command's module is imported (:data:`COMMANDS` maps each command to
its module), so ``sentinel --version`` and ``sentinel config check`` start in a small
fraction of the time the daemon's imports take; a command module imports its heavy
dependencies (numpy, tritonclient, the stages) where it uses them.

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

from sentinel import __version__  # noqa: E402 -- after the BLAS thread limit

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run the daemon (probes, detectors, playbooks, paging)"),
    "demo": ("demo", "run sentinel against a real local Triton and inject faults"),
    "config": ("config_cmd", "check a config file, or show the effective config"),
    "gpu": ("gpu", "show each GPU as NVML sees it (exit 3 without NVML)"),
    "record": ("record", "record GPU samples, Xid events, canaries to JSON lines"),
    "replay": ("replay", "run the detectors over a recording or a metric series"),
    "playbook": ("playbook", "validate, list, show, run and test playbooks"),
    "runs": ("runs", "recent playbook runs (through the daemon, or --local)"),
    "incidents": ("incidents", "list incidents from the state directory"),
    "silence": ("silence", "add, list or expire silences (maintenance windows)"),
    "pause": ("pause", "stop automatic playbook runs for a while (all, or some)"),
    "resume": ("pause", "end a pause now (no ID: every active pause)"),
    "pauses": ("pause", "active pauses of the automation"),
    "breaker": ("breaker", "see or reset the automation circuit breaker"),
    "model": ("model", "back up, verify and restore known-good model files"),
    "golden": ("golden", "capture golden sets from a model known to be good"),
    "completion": ("completion", "print a shell completion script (bash, zsh or fish)"),
}
"""Command name -> (module under sentinel.cli that registers it, one-line help)."""


LIGHT_COMMANDS = frozenset({"config", "completion"})
"""Commands that do without structlog (its imports cost about 0.1 s): `config` loads a
config with stdout pointed at stderr, so a warning logged meanwhile stays off its answer."""


def _logs_to_stderr() -> None:
    """Until a command configures logging, a warning (a deprecated config key, say) goes to
    stderr: stdout is for what the command prints (`--json` output must stay parseable)."""
    import structlog

    if not structlog.is_configured():
        structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))


def _chosen(argv: Sequence[str]) -> str | None:
    """The command named on the command line (the first word not an option), if known."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(only: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser (every module imported); with ``only``, just those commands'
    modules register theirs in full, and every other command is a stub carrying its help
    line (its module not imported)."""
    parser = argparse.ArgumentParser(
        prog="sentinel",
        description="Watches Triton and its GPUs, fixes what it safely can, pages when needed.",
    )
    parser.add_argument("--version", action="version", version=f"sentinel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = COMMANDS if only is None else only
    for module in dict.fromkeys(COMMANDS[name][0] for name in names):
        importlib.import_module(f"sentinel.cli.{module}").register(sub)
    for name, (_, helptext) in COMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=helptext, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. A closed stdout (`sentinel incidents | head -1`)
    ends the command quietly."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(args_in)
    except BrokenPipeError:
        # Python's advice (docs: signal, "Note on SIGPIPE"): point stdout at devnull so the
        # interpreter's final flush does not raise again at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _main(argv: list[str]) -> int:
    chosen = _chosen(argv)
    parser = build_parser([chosen] if chosen else [])
    args = parser.parse_args(argv)
    if chosen not in LIGHT_COMMANDS:
        _logs_to_stderr()
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A StateError (any command that opens the database): one line, no traceback. Its
        # module is loaded if one was raised; a command without a database never loads it.
        db = sys.modules.get("sentinel.base.db")
        if db is None or not isinstance(exc, db.StateError):
            raise
        print(f"sentinel: {exc}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    return code
