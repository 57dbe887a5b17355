"""System tools the operations tests run (installed by tools/install-system-deps.sh)."""

from __future__ import annotations

import shutil

import pytest


def need_tool(name: str) -> str:
    """Path of a system tool, or skip the test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (run tools/install-system-deps.sh as root)")
    return path
