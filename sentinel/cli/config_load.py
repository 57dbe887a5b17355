"""Loading the config for a command: its problems go to stderr, one per line, and the
command exits :data:`BAD_INPUT`. Every command that reads the config (or the state
database under its ``state_dir``) takes it the same way: :func:`add_config_arg`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config pulls in every stage's settings: only when a command loads it
    from sentinel.base.yamlsource import InvalidFile
    from sentinel.config import Config

BAD_INPUT = 2
"""The exit code for a bad config, playbook or argument (see ``sentinel.cli``)."""
CONFIG_ENV = "SENTINEL_CONFIG"
"""The environment variable naming the config file when ``-c/--config`` is not given."""


def add_config_arg(p: argparse.ArgumentParser, helptext: str = "", suppress: bool = False) -> None:
    """``-c/--config FILE``, defaulting to ``$SENTINEL_CONFIG`` (else built-in defaults).
    ``suppress``: an action's copy of its group's option, which keeps the group's value
    when left out."""
    default = argparse.SUPPRESS if suppress else os.environ.get(CONFIG_ENV) or None
    p.add_argument(
        "-c",
        "--config",
        default=default,
        metavar="FILE",
        help=(helptext or "config file") + f" (default: ${CONFIG_ENV}, else built-in defaults)",
    )


def print_problems(exc: InvalidFile) -> None:
    """Each problem of an invalid file as ``FILE:LINE: field: message`` on stderr."""
    for problem in exc.problems:
        print(problem, file=sys.stderr)


def load_or_report(path: str | None) -> Config | None:
    """The config at ``path`` (built-in defaults when None), or None after printing its
    problems; the caller then returns :data:`BAD_INPUT`."""
    from sentinel.base.yamlsource import InvalidFile
    from sentinel.config import load_config

    try:
        return load_config(path)
    except InvalidFile as exc:
        print_problems(exc)
        return None


def positive_duration(text: str) -> float:
    """Seconds from a duration flag's text (``90s``, ``1h30m``): the grammar of every config
    duration (:mod:`sentinel.base.duration`), more than 0; ValueError otherwise."""
    from sentinel.base.duration import EXAMPLES, parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise ValueError(f"not a duration: {text!r} ({EXAMPLES}; more than 0)")
    return seconds


def duration_arg(text: str) -> float:
    """:func:`positive_duration` as an argparse ``type``."""
    try:
        return positive_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
