"""The replay source: every sample type, paced on a FakeClock, bad lines skipped."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from sentinel.base.clock import FakeClock
from sentinel.probes.recording import RecordingWriter
from sentinel.probes.replay import ReplaySource
from sentinel.testing.sinks import RecordingSink
from sentinel.vocabulary.samples import (
    Agreement,
    CanaryResult,
    GpuEvent,
    GpuProcess,
    GpuSample,
    Sample,
    TritonHealth,
)

T0 = 1_800_000_000.0


def _write(path: Path, samples: list[Sample]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        writer = RecordingWriter(fh)
        for s in samples:
            writer.write(s)
    return path


def _mixed() -> list[Sample]:
    return [
        GpuSample(
            ts=T0,
            index=0,
            uuid="GPU-a",
            clock_event_reasons=0x4,
            clock_event_names=("SwPowerCap",),
            processes=(GpuProcess(pid=1, used_bytes=2),),
        ),
        CanaryResult(
            ts=T0 + 1,
            model="digits",
            version="1",
            batch_size=4,
            outcome="ok",
            latency_s=0.01,
            agreement=Agreement(max_abs_error=0.1, cosine=0.99, top1=1.0),
        ),
        GpuEvent(ts=T0 + 3, uuid="GPU-a", kind="xid", xid=31, cause="application"),
        TritonHealth(ts=T0 + 3.5, live=True, ready=False, failures_by_reason={"BACKEND": 2.0}),
    ]


async def test_all_sample_types_replay_unchanged(tmp_path: Path) -> None:
    """GPU samples, GPU events, canary results and Triton health come back equal, in order."""
    samples = _mixed()
    sink = RecordingSink()
    source = ReplaySource(_write(tmp_path / "r.jsonl", samples), FakeClock(), speed=None)
    stats = await source.run(sink)
    assert samples == sink.got
    assert {"gpu": 1, "canary": 1, "gpu_event": 1, "triton": 1} == stats.by_type


@pytest.mark.parametrize(("speed", "steps"), [(1.0, [0, 1, 2, 0.5]), (2.0, [0, 0.5, 1, 0.25])])
async def test_replay_is_paced_at_recorded_speed_times_speed(
    tmp_path: Path, speed: float, steps: list[float]
) -> None:
    """Each sample is delivered when its recorded offset / speed has passed on the clock."""
    path = _write(tmp_path / "r.jsonl", _mixed())
    clock = FakeClock()
    sink = RecordingSink()
    task = asyncio.create_task(ReplaySource(path, clock, speed=speed).run(sink))
    delivered = []
    for step in steps:
        await clock.advance(step)
        delivered.append(len(sink.got))
    await task
    assert [1, 2, 3, 4] == delivered


async def test_fast_replay_does_not_wait(tmp_path: Path) -> None:
    """speed=None delivers everything without the clock moving."""
    clock = FakeClock()
    sink = RecordingSink()
    await ReplaySource(_write(tmp_path / "r.jsonl", _mixed()), clock, speed=None).run(sink)
    assert (4, 0.0) == (len(sink.got), clock.monotonic())


async def test_bad_lines_are_reported_by_number_and_skipped(tmp_path: Path) -> None:
    """A truncated line, a non-object and an unknown type are reported; the rest replays."""
    good = _mixed()
    path = _write(tmp_path / "r.jsonl", good[:2])
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"type":"gpu","ts":1.0,"index":0,"uu\n')
        fh.write("[1, 2]\n")
        fh.write('{"type":"weather","ts":1.0}\n')
        fh.write('{"type":"gpu","ts":"soon","index":0,"uuid":"x"}\n')
    _write(tmp_path / "tail.jsonl", good[2:])
    path.write_text(path.read_text() + (tmp_path / "tail.jsonl").read_text())
    reported: list[tuple[int, str]] = []
    sink = RecordingSink()
    source = ReplaySource(
        path, FakeClock(), speed=None, on_bad_line=lambda n, why: reported.append((n, why))
    )
    stats = await source.run(sink)
    assert [3, 4, 5, 6] == [n for n, _ in reported]
    assert reported == stats.bad_lines
    assert "ts:" in reported[3][1]
    assert good == sink.got


async def test_retime_moves_the_first_sample_to_now(tmp_path: Path) -> None:
    """retime=True shifts every timestamp by the same amount so the first is clock.now()."""
    clock = FakeClock(start=T0 + 86_400)
    sink = RecordingSink()
    path = _write(tmp_path / "r.jsonl", _mixed())
    await ReplaySource(path, clock, speed=None, retime=True).run(sink)
    assert [clock.now() + (s.ts - T0) for s in _mixed()] == [s.ts for s in sink.got]


async def test_types_filter_keeps_only_named_types(tmp_path: Path) -> None:
    """types={'gpu','gpu_event'} makes a GPU-only source of a mixed recording."""
    sink = RecordingSink()
    path = _write(tmp_path / "r.jsonl", _mixed())
    await ReplaySource(path, FakeClock(), speed=None, types={"gpu", "gpu_event"}).run(sink)
    assert ["gpu", "gpu_event"] == [s.TYPE for s in sink.got]


async def test_out_of_order_timestamps_do_not_wait_backwards(tmp_path: Path) -> None:
    """A sample older than the one before it is sent at once, not held."""
    samples = [
        dataclasses.replace(s, ts=ts)
        for s, ts in zip(_mixed(), (T0, T0 + 2, T0 + 1, T0 + 2), strict=True)
    ]
    clock = FakeClock()
    sink = RecordingSink()
    task = asyncio.create_task(ReplaySource(_write(tmp_path / "r.jsonl", samples), clock).run(sink))
    await asyncio.sleep(0)  # let the replay start (and park) before time moves
    await clock.advance(2)
    await task
    assert samples == sink.got


def test_speed_must_be_positive(tmp_path: Path) -> None:
    """A zero or negative speed is refused when the source is made."""
    with pytest.raises(ValueError, match="speed must be > 0"):
        ReplaySource(tmp_path / "r.jsonl", FakeClock(), speed=0)


async def test_missing_file_is_an_oserror(tmp_path: Path) -> None:
    """A recording that does not exist raises FileNotFoundError from run()."""
    with pytest.raises(FileNotFoundError):
        await ReplaySource(tmp_path / "nope.jsonl", FakeClock()).run(RecordingSink())
