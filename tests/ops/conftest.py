"""Fixtures for the operations assets: the Lease API stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from lease_standin import LeaseApiStandIn


@pytest.fixture
async def lease_server() -> AsyncIterator[LeaseApiStandIn]:
    """A running loopback STAND-IN for the Kubernetes Lease API."""
    server = LeaseApiStandIn()
    await server.start()
    yield server
    await server.stop()
