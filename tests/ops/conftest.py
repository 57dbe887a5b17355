"""Fixtures for the operations assets: the Lease API stand-in and tool lookups."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lease_standin import LeaseApiStandIn

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def lease_server() -> AsyncIterator[LeaseApiStandIn]:
    """A running loopback STAND-IN for the Kubernetes Lease API."""
    server = LeaseApiStandIn()
    await server.start()
    yield server
    await server.stop()


def need_tool(name: str) -> str:
    """Path of a system tool, or skip (tools/install-system-deps.sh installs them)."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (run tools/install-system-deps.sh as root)")
    return path
