"""What every detector looks like to the suite and to `sentinel replay`."""

from __future__ import annotations

from typing import Protocol

from sentinel.vocabulary.findings import Judgement
from sentinel.vocabulary.samples import Sample


class Detector(Protocol):
    """A pure function of a sample stream: samples in, findings and clears out."""

    name: str
    accepts: tuple[type, ...]
    """Sample classes this detector reads; the suite routes only these to it."""

    def observe(self, sample: Sample) -> list[Judgement]:
        """Judge one sample (time comes from ``sample.ts``)."""
        ...

    def tick(self, now: float) -> list[Judgement]:
        """Notice the passing of time without samples (e.g. a quiet period ending)."""
        ...

    def suspects(self, model: str) -> bool:
        """True while ``model``'s latest canary looked wrong and no finding is open for it
        yet: a canary recheck now confirms (or dispels) the suspicion sooner."""
        ...


def fmt_s(seconds: float) -> str:
    """Latency for people: '412 ms' or '1.25 s'."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def rnd(x: float, digits: int = 6) -> float:
    """Evidence numbers rounded so JSON stays readable."""
    return round(x, digits)
