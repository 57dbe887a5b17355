"""The canary's plan (the model's config and metadata): reused by scheduled rounds, read
afresh by check(), when old, and when a round fails: against a real tritonserver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from triton_fixtures import GOLDEN_DIGITS, ModelHandle, make_adapter

from sentinel.base.clock import FakeClock
from sentinel.probes.canary import PLAN_MAX_AGE_S, CanaryProbe
from sentinel.probes.settings import CanarySettings
from sentinel.probes.triton import TritonAdapter
from sentinel.vocabulary.samples import CanaryResult, Sample

pytestmark = pytest.mark.triton


class CountingAdapter:
    """The real adapter, counting the config reads (each round's plan starts with one)."""

    def __init__(self, inner: TritonAdapter) -> None:
        self.inner = inner
        self.config_reads = 0

    async def model_config(self, model: str, version: str = "") -> dict[str, Any]:
        self.config_reads += 1
        return await self.inner.model_config(model, version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
async def counting(digits: ModelHandle) -> AsyncIterator[CountingAdapter]:
    """The session server over gRPC, its config reads counted."""
    adapter = make_adapter(digits.server, "grpc")
    try:
        yield CountingAdapter(adapter)
    finally:
        await adapter.close()


def _canary(adapter: CountingAdapter, clock: FakeClock, batch_sizes: list[int]) -> CanaryProbe:
    settings = CanarySettings.model_validate(
        {"model": "digits", "golden_set": str(GOLDEN_DIGITS), "batch_sizes": batch_sizes}
    )
    return CanaryProbe(adapter, settings, clock=clock)  # type: ignore[arg-type]


def _sizes(samples: list[Sample]) -> list[tuple[int, str]]:
    return [(s.batch_size, s.outcome) for s in samples if isinstance(s, CanaryResult)]


async def test_scheduled_rounds_reuse_the_plan_until_it_is_old(counting: CountingAdapter) -> None:
    """Scheduled rounds read the model's config once per PLAN_MAX_AGE_S; check() (playbook
    verification) always reads it."""
    clock = FakeClock()
    canary = _canary(counting, clock, [1, 8])
    for _ in range(3):
        assert [(1, "ok"), (8, "ok")] == _sizes(await canary.once())
    reads_while_fresh = counting.config_reads
    await canary.check()
    reads_after_check = counting.config_reads
    clock.set(PLAN_MAX_AGE_S + 1)
    await canary.once()
    assert (1, 2, 3) == (reads_while_fresh, reads_after_check, counting.config_reads)


async def test_a_model_reloaded_under_the_plan_is_never_blamed(
    counting: CountingAdapter, digits: ModelHandle
) -> None:
    """A smaller max_batch_size loaded between scheduled rounds: the next round is probed at
    the new cap and reported ok, not as the failure the stale plan caused."""
    canary = _canary(counting, FakeClock(), [1, 16])
    before = _sizes(await canary.once())
    digits.reconfigure(max_batch_size=8)
    after = _sizes(await canary.once())
    assert ([(1, "ok"), (16, "ok")], [(1, "ok"), (8, "ok")]) == (before, after)
