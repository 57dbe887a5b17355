"""Model readiness in health rounds comes from the repository index (one call for every
watched model), against a real tritonserver over both protocols."""

from __future__ import annotations

import pytest
from triton_fixtures import ModelHandle

from sentinel.probes.triton import TritonAdapter
from sentinel.probes.triton_health import TritonHealthProbe

pytestmark = pytest.mark.triton


async def test_readiness_follows_the_index_without_a_call_per_model(
    triton_adapter: TritonAdapter, digits: ModelHandle
) -> None:
    """Loaded: ready with its version; unloaded, or not in the repository: not ready; and
    no per-model readiness call is made while the index answers."""
    asked: list[str] = []
    check_model_ready = triton_adapter.check_model_ready

    async def counted(model: str, version: str = "") -> None:
        asked.append(model)
        await check_model_ready(model, version)

    triton_adapter.check_model_ready = counted  # type: ignore[method-assign]
    probe = TritonHealthProbe(triton_adapter, ["digits", "no_such_model"])
    loaded = await probe.sample()
    digits.unload()
    unloaded = await probe.sample()
    ready = [[(s.model, s.model_ready, s.model_versions) for s in r] for r in (loaded, unloaded)]
    assert [
        [("digits", True, ("1",)), ("no_such_model", False, ())],
        [("digits", False, ()), ("no_such_model", False, ())],
    ] == ready
    assert [] == asked
