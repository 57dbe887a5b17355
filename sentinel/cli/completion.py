"""`sentinel completion bash|zsh|fish`: print a shell completion script.

    sentinel completion bash > /etc/bash_completion.d/sentinel
    sentinel completion zsh > "${fpath[1]}/_sentinel"
    sentinel completion fish > ~/.config/fish/completions/sentinel.fish

The script is generated from the command line's own parser (every command, action and
option), by shtab; it is static, so completing costs the shell nothing at each keystroke.
"""

from __future__ import annotations

import argparse

SHELLS = ("bash", "zsh", "fish")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh or fish)")
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    import shtab

    from sentinel.cli import build_parser

    print(shtab.complete(build_parser(), shell=args.shell), end="")
    return 0
