"""Streaming canaries against the real decoupled model: measures, exact match, each fault."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from streaming_golden import GOLDEN_CHARLM
from triton_fixtures import ModelHandle, make_adapter

from sentinel.detect.generation import DRIFT, STALLED, TTFT, GenerationDetector
from sentinel.detect.settings import GenerationSettings
from sentinel.probes.settings import StreamCanarySettings
from sentinel.probes.stream_canary import StreamCanaryProbe
from sentinel.testing.triton_local import LocalTriton
from sentinel.vocabulary.findings import Finding, Severity
from sentinel.vocabulary.samples import StreamResult

pytestmark = pytest.mark.triton
INTERVAL_S = 10.0
"""Rounds are stamped this far apart for the detector: the measures are real, the
schedule is the probe's default interval without waiting for it."""


@pytest.fixture
async def probe(charlm: ModelHandle) -> AsyncIterator[StreamCanaryProbe]:
    """A streaming canary on the charlm model, all four golden prompts per round."""
    server = charlm.server
    adapter = make_adapter(server, "http")  # metadata over HTTP, the stream over gRPC
    settings = StreamCanarySettings(
        model="charlm",
        golden_set=GOLDEN_CHARLM,
        prompts_per_round=4,
        stall_timeout_s=1.0,
        first_token_timeout_s=5.0,
    )
    canary = StreamCanaryProbe(adapter, settings, url=server.grpc_url)
    try:
        yield canary
    finally:
        await canary.close()
        await adapter.close()


class Timeline:
    """Feeds real stream results to a detector, stamped INTERVAL_S apart."""

    def __init__(self, detector: GenerationDetector) -> None:
        self.detector = detector
        self.ts = 0.0
        self.findings: list[Finding] = []

    def feed(self, results: list[StreamResult]) -> None:
        for result in results:
            self.ts += INTERVAL_S
            for j in self.detector.observe(dataclasses.replace(result, ts=self.ts)):
                if isinstance(j, Finding):
                    self.findings.append(j)

    def kinds(self) -> list[str]:
        return [f.kind for f in self.findings]


async def rounds(probe: StreamCanaryProbe, n: int) -> list[StreamResult]:
    out: list[StreamResult] = []
    for _ in range(n):
        out.extend(await probe.check())
    return out


async def test_healthy_model_streams_the_golden_text_exactly(probe: StreamCanaryProbe) -> None:
    """Every golden prompt streams its reference text token for token, with sane timings."""
    results = await probe.check()
    assert [0, 1, 2, 3] == [r.prompt for r in results]
    for r in results:
        assert ("ok", True, True, 0.0) == (r.outcome, r.completed, r.exact_match, r.edit_distance)
        assert 48 == r.tokens
        assert r.ttft_s is not None
        assert 0 < r.ttft_s < 2.0
        assert r.itl_s is not None
        assert 0 < r.itl_s < 1.0
        assert r.tokens_per_s is not None
        assert r.tokens_per_s > 1.0
        assert "1" == r.version


async def test_slow_first_token_fires_ttft_spike(
    probe: StreamCanaryProbe, charlm: ModelHandle
) -> None:
    """first_token_delay_ms on the real model: ttft_spike over the learnt baseline."""
    timeline = Timeline(GenerationDetector())
    timeline.feed(await rounds(probe, 3))
    assert [] == timeline.kinds()
    charlm.reconfigure(first_token_delay_ms=400)
    slow = await rounds(probe, 2)
    assert all(r.ttft_s is not None and r.ttft_s >= 0.4 for r in slow)
    assert all(r.exact_match for r in slow)  # slow, not wrong
    timeline.feed(slow)
    assert [TTFT] == timeline.kinds()


async def test_stall_mid_stream_fires_stream_stalled(
    probe: StreamCanaryProbe, charlm: ModelHandle
) -> None:
    """stall_after_tokens on the real model: the canary gives up, stream_stalled fires."""
    charlm.reconfigure(stall_after_tokens=5, stall_s=30)
    timeline = Timeline(GenerationDetector())
    results = await probe.check()
    first = results[0]
    assert (True, False, "timeout", 5) == (
        first.stalled,
        first.completed,
        first.outcome,
        first.tokens,
    )
    timeline.feed(results)
    assert [STALLED] == timeline.kinds()
    assert Severity.CRITICAL == timeline.findings[0].severity


async def test_garbage_tokens_fire_critical_generation_drift(
    probe: StreamCanaryProbe, charlm: ModelHandle
) -> None:
    """garbage_after_tokens on the real model: the text departs, generation_drift is critical."""
    charlm.reconfigure(garbage_after_tokens=8)
    results = await probe.check()
    assert all(r.completed and not r.exact_match for r in results)
    timeline = Timeline(GenerationDetector())
    timeline.feed(results)
    assert [DRIFT] == timeline.kinds()
    assert Severity.CRITICAL == timeline.findings[0].severity


@pytest.mark.parametrize(
    ("precision", "settings", "severity"),
    [
        ("int4", GenerationSettings(), Severity.CRITICAL),
        ("int8", GenerationSettings(min_exact_share=0.9), Severity.WARNING),
    ],
)
async def test_quantized_variants_drift_from_the_golden_text(
    probe: StreamCanaryProbe,
    charlm: ModelHandle,
    precision: str,
    settings: GenerationSettings,
    severity: Severity,
) -> None:
    """int4 weights drift far (critical); int8 drifts a little, caught by the exact-share rule."""
    charlm.reconfigure(precision=precision)
    results = await probe.check()
    assert any(not r.exact_match for r in results)
    timeline = Timeline(GenerationDetector(settings))
    timeline.feed(results)
    assert [DRIFT] == timeline.kinds()
    assert severity == timeline.findings[0].severity


async def test_unloaded_model_is_not_ready_not_a_stall(
    probe: StreamCanaryProbe, charlm: ModelHandle, llm_server: LocalTriton
) -> None:
    """With the model unloaded every stream is model_not_ready and no stream finding fires."""
    charlm.unload()
    results = await probe.check()
    assert ["model_not_ready"] * 4 == [r.outcome for r in results]
    timeline = Timeline(GenerationDetector())
    timeline.feed(results)
    assert [] == timeline.kinds()
