"""All detectors behind one call: ``observe(sample)`` routes a sample to those that read it."""

from __future__ import annotations

from collections.abc import Iterable

from sentinel.detect.accuracy import AccuracyDetector
from sentinel.detect.backlog import BacklogDetector
from sentinel.detect.base import Detector
from sentinel.detect.errors import ErrorDetector
from sentinel.detect.generation import GenerationDetector
from sentinel.detect.integrity import IntegrityDetector
from sentinel.detect.latency import LatencyDetector
from sentinel.detect.memory import MemoryDetector
from sentinel.detect.settings import DetectorSettings
from sentinel.detect.thermal import ThermalDetector
from sentinel.detect.traffic import TrafficDetector
from sentinel.vocabulary.findings import Judgement
from sentinel.vocabulary.samples import Sample

DETECTOR_NAMES = (
    "latency",
    "memory",
    "thermal",
    "accuracy",
    "errors",
    "backlog",
    "model_integrity",
    "generation",
    "traffic",
)


def build_detector(
    name: str, settings: DetectorSettings, server_pids: Iterable[int] = ()
) -> Detector:
    """One detector by name (see DETECTOR_NAMES), from its settings sub-section."""
    if name == "latency":
        return LatencyDetector(settings.latency)
    if name == "memory":
        return MemoryDetector(settings.memory, server_pids=set(server_pids))
    if name == "thermal":
        return ThermalDetector(settings.thermal)
    if name == "accuracy":
        return AccuracyDetector(settings.accuracy)
    if name == "errors":
        return ErrorDetector(settings.errors)
    if name == "backlog":
        return BacklogDetector(settings.backlog)
    if name == "model_integrity":
        return IntegrityDetector(settings.model_integrity)
    if name == "generation":
        return GenerationDetector(settings.generation)
    if name == "traffic":
        return TrafficDetector(settings.traffic)
    raise ValueError(f"unknown detector {name!r}; one of {', '.join(DETECTOR_NAMES)}")


class DetectorSuite:
    """The enabled detectors of a config. Pure: no I/O, time from the samples."""

    def __init__(
        self,
        settings: DetectorSettings | None = None,
        *,
        server_pids: Iterable[int] = (),
        only: Iterable[str] | None = None,
    ) -> None:
        self.settings = settings or DetectorSettings()
        names = list(only) if only is not None else list(DETECTOR_NAMES)
        self.detectors: list[Detector] = [
            build_detector(n, self.settings, server_pids)
            for n in names
            if only is not None or getattr(self.settings, n).enabled
        ]
        self._routes: dict[type, list[Detector]] = {}

    def set_server_pids(self, pids: Iterable[int]) -> None:
        """Tell the memory detector which processes are the server (for OOM attribution)."""
        for d in self.detectors:
            if isinstance(d, MemoryDetector):
                d.server_pids = set(d.settings.server_pids) | set(pids)

    def observe(self, sample: Sample) -> list[Judgement]:
        """Findings and clears caused by one sample, in detector order."""
        out: list[Judgement] = []
        for d in self._route(type(sample)):
            out.extend(d.observe(sample))
        return out

    def suspects(self, model: str) -> bool:
        """Whether any detector wants ``model``'s canary rechecked soon (see Detector)."""
        return any(d.suspects(model) for d in self.detectors)

    def tick(self, now: float) -> list[Judgement]:
        """Let detectors notice time passing without samples (call every few seconds)."""
        out: list[Judgement] = []
        for d in self.detectors:
            out.extend(d.tick(now))
        return out

    def _route(self, cls: type) -> list[Detector]:
        route = self._routes.get(cls)
        if route is None:
            route = [d for d in self.detectors if issubclass(cls, d.accepts)]
            self._routes[cls] = route
        return route
