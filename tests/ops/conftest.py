"""Fixtures for the operations assets: the Kubernetes API stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sentinel.testing.kubernetes import KubernetesApiStandIn


@pytest.fixture
async def lease_server() -> AsyncIterator[KubernetesApiStandIn]:
    """A running loopback STAND-IN for the Kubernetes API (its Lease endpoints here)."""
    async with KubernetesApiStandIn() as server:
        yield server
