"""Loading the config for a command: its problems go to stderr, one per line, and the
command exits :data:`BAD_INPUT`."""

from __future__ import annotations

import sys

from sentinel.base.yamlsource import InvalidFile
from sentinel.config import Config, load_config

BAD_INPUT = 2
"""The exit code for a bad config, playbook or argument (see ``sentinel.cli``)."""


def print_problems(exc: InvalidFile) -> None:
    """Each problem of an invalid file as ``FILE:LINE: field: message`` on stderr."""
    for problem in exc.problems:
        print(problem, file=sys.stderr)


def load_or_report(path: str | None) -> Config | None:
    """The config at ``path`` (built-in defaults when None), or None after printing its
    problems; the caller then returns :data:`BAD_INPUT`."""
    try:
        return load_config(path)
    except InvalidFile as exc:
        print_problems(exc)
        return None
