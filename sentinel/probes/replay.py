"""Replay: a recording fed into a sink as if the probes were producing it live.

Every sample type replays (GPU samples, GPU events, canary results, Triton
health), in file order, at recorded speed times ``speed`` on the injected
clock, or as fast as possible. Downstream cannot tell replay from live data,
which is how detectors and playbooks are tested on real incidents. Bad lines
are reported with their line number and skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from sentinel.base.clock import Clock
from sentinel.probes.recording import iter_recording
from sentinel.vocabulary.ports import SampleSink
from sentinel.vocabulary.samples import Sample

log = structlog.get_logger(__name__)


@dataclass
class ReplayStats:
    """What a replay did."""

    samples: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    """(line number, problem) of every line skipped."""


class ReplaySource:
    """Feeds a JSON-lines recording into a sink, paced on a clock.

    ``speed`` multiplies recorded speed (2.0 = twice as fast); ``speed=None``
    sends everything without waiting. ``retime`` shifts timestamps so the first
    sample carries ``clock.now()`` at the start: a daemon replaying an old
    incident then sees fresh samples, not hours-old ones. ``types`` keeps only
    those sample types (e.g. ``{"gpu", "gpu_event"}`` for a GPU-only source).
    """

    def __init__(
        self,
        path: str | Path,
        clock: Clock,
        *,
        speed: float | None = 1.0,
        retime: bool = False,
        types: Iterable[str] | None = None,
        on_bad_line: Callable[[int, str], None] | None = None,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"replay speed must be > 0, got {speed}")
        self.path = Path(path)
        self._clock = clock
        self._speed = speed
        self._retime = retime
        self._types = frozenset(types) if types is not None else None
        self._on_bad_line = on_bad_line
        self.stats = ReplayStats()

    def _bad_line(self, lineno: int, problem: str) -> None:
        self.stats.bad_lines.append((lineno, problem))
        if self._on_bad_line is not None:
            self._on_bad_line(lineno, problem)
        else:
            log.warning("replay_line_skipped", file=str(self.path), line=lineno, problem=problem)

    async def run(self, sink: SampleSink) -> ReplayStats:
        """Send every sample to ``sink``; returns when the recording ends.

        Raises OSError when the file cannot be read.
        """
        first_ts: float | None = None
        start = self._clock.monotonic()
        shift = 0.0
        for sample in iter_recording(self.path, self._bad_line):
            if self._types is not None and sample.TYPE not in self._types:
                continue
            if first_ts is None:
                first_ts = sample.ts
                shift = self._clock.now() - first_ts if self._retime else 0.0
            if self._speed is not None:
                due = start + (sample.ts - first_ts) / self._speed
                wait = due - self._clock.monotonic()
                if wait > 0:
                    await self._clock.sleep(wait)
            if shift:
                sample = dataclasses.replace(sample, ts=sample.ts + shift)
            await sink(sample)
            self.stats.samples += 1
            self.stats.by_type[sample.TYPE] = self.stats.by_type.get(sample.TYPE, 0) + 1
        return self.stats


class ReplayProbe:
    """A recording played into the pipeline as if live (``gpu.source: replay:FILE``)."""

    name = "replay"

    def __init__(self, path: str, speed: float, clock: Clock) -> None:
        self.source = ReplaySource(path, clock, speed=speed, retime=True)

    async def run(self, sink: SampleSink, clock: Clock) -> None:
        stats = await self.source.run(sink)
        log.info("replay_finished", samples=stats.samples, bad_lines=len(stats.bad_lines))

    async def once(self) -> list[Sample]:
        return []


def load_samples(
    path: str | Path, on_bad_line: Callable[[int, str], None] | None = None
) -> list[Sample]:
    """All samples of a recording, in order (for tests and backtests)."""
    return list(iter_recording(path, on_bad_line))
