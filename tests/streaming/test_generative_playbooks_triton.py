"""Playbooks for generative incidents, verified by the streaming canary on real tritonserver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from streaming_golden import GOLDEN_CHARLM
from triton_fixtures import ROOT, ModelHandle, make_adapter

import sentinel.incidents.store  # noqa: F401 -- registers the incident tables
from sentinel.base.db import open_db
from sentinel.probes.canary import CanaryGroup
from sentinel.probes.settings import StreamCanarySettings
from sentinel.probes.stream_canary import StreamCanaryProbe, StreamVerification
from sentinel.runbook.engine import Engine
from sentinel.runbook.schema import load_playbook
from sentinel.runbook.settings import RunbookSettings
from sentinel.vocabulary.findings import Severity, Subject
from sentinel.vocabulary.incidents import Incident, IncidentStatus
from sentinel.vocabulary.notices import Notice, PageRequest

pytestmark = pytest.mark.triton


class RecordingTeller:
    """Stand-in for the notify stage's Teller: keeps every notice."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def tell(self, notice: Notice) -> None:
        self.notices.append(notice)

    def of(self, kind: type) -> list[Any]:
        return [n for n in self.notices if isinstance(n, kind)]


class FastClock:
    """A test clock 20x faster than real time, so verification windows pass in seconds."""

    def __init__(self) -> None:
        self._real0 = time.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._real0) * 20.0

    def now(self) -> float:
        return 1_700_000_000.0 + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / 20.0)


class Rig:
    def __init__(self, probe: StreamCanaryProbe, engine: Engine, teller: RecordingTeller) -> None:
        self.probe, self.engine, self.teller = probe, engine, teller


@pytest.fixture
async def rig(charlm: ModelHandle, tmp_path: Path) -> AsyncIterator[Rig]:
    """The generative playbooks, verified by a streaming canary (one prompt per round)."""
    server = charlm.server
    adapter = make_adapter(server, "http", timeout_s=10)
    clock = FastClock()
    settings = StreamCanarySettings(
        model="charlm", golden_set=GOLDEN_CHARLM, stall_timeout_s=1.0, first_token_timeout_s=5.0
    )
    probe = StreamCanaryProbe(adapter, settings, url=server.grpc_url, clock=clock)
    playbooks = {}
    for name in ("generation-drift", "stream-stalled"):
        loaded = load_playbook(ROOT / "playbooks" / f"{name}.yaml")
        playbooks[loaded.playbook.name] = loaded
    conn = open_db(tmp_path / "state.db")
    teller = RecordingTeller()
    engine = Engine(
        settings=RunbookSettings(dirs=[], canary_interval_s=5.0),
        conn=conn,
        clock=clock,
        playbooks=playbooks,
        triton=adapter,
        canary=CanaryGroup([StreamVerification(probe)]),
        teller=teller,
        pod="pod-a",
    )
    try:
        yield Rig(probe, engine, teller)
    finally:
        await engine.stop()
        await probe.close()
        await adapter.close()
        conn.close()


def incident(kind: str, severity: Severity, now: float) -> Incident:
    return Incident(
        id=f"inc-{kind}",
        key=f"pod-a/charlm:1/{kind}",
        kind=kind,
        severity=severity,
        subject=Subject(model="charlm", version="1"),
        status=IncidentStatus.FIRING,
        summary=kind,
        started_at=now - 30,
        detected_at=now - 30,
        updated_at=now,
    )


def precision(charlm: ModelHandle) -> Any:
    served = charlm.served_config() or {}
    return served["parameters"]["precision"]["string_value"]


async def test_drifting_int4_plan_is_switched_to_bf16_and_streams_the_golden_text(
    rig: Rig, charlm: ModelHandle
) -> None:
    """generation-drift reloads an int4 model as bf16; the streaming canary verifies it."""
    charlm.reconfigure(precision="int4")
    [before] = await rig.probe.check()
    assert not before.exact_match
    [run] = await rig.engine.consider(
        incident("generation_drift", Severity.CRITICAL, rig.probe.clock.now())
    )
    assert ("generation-drift", "succeeded") == (run.playbook, run.status)
    assert "bf16" == precision(charlm)
    [after] = await rig.probe.check()
    assert (True, 0.0) == (after.exact_match, after.edit_distance)


async def test_wedged_model_is_reloaded_and_its_streams_complete_again(
    rig: Rig, charlm: ModelHandle
) -> None:
    """stream-stalled reloads a model wedged after a few requests; streams complete again."""
    charlm.reconfigure(wedge_after_requests=3, stall_s=30)  # the knob wedges again later
    results = [r for _ in range(4) for r in await rig.probe.check()]
    assert [False, False, False, True] == [r.stalled for r in results]
    [run] = await rig.engine.consider(
        incident("stream_stalled", Severity.CRITICAL, rig.probe.clock.now())
    )
    assert ("stream-stalled", "succeeded") == (run.playbook, run.status)
    [after] = await rig.probe.check()  # the third request since the reload
    assert (True, True) == (after.completed, after.exact_match)


async def test_stall_that_a_reload_does_not_fix_pages(rig: Rig, charlm: ModelHandle) -> None:
    """A model that stalls from its first request fails verification after the reload: page."""
    charlm.reconfigure(stall_after_tokens=3, stall_s=30)
    [run] = await rig.engine.consider(
        incident("stream_stalled", Severity.CRITICAL, rig.probe.clock.now())
    )
    assert "failed" == run.status
    [page] = rig.teller.of(PageRequest)
    assert "streams still stall" in page.reason
