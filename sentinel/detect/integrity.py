"""``model_integrity``: the files behind a served model, against its known-good manifest.

Reads the model-files probe's samples (each version's files next to its manifest),
Triton's health (which versions are served) and GPU samples (which GPU serves them).
Findings, each about one model (and version):

* ``model_files_changed`` (critical): a file of a served version differs from, is
  shorter than, or is missing from its known-good manifest, or the version's folder is
  gone (the evidence says whether Triton still has the model ready: a failed reload
  keeps the old instance serving, a restart would not load it at all). A deploy is a
  new version folder (Triton's convention), so a change inside a proven one is damage:
  an overwritten engine, a truncated copy, a hand edit. The evidence lists each file
  with its expected and actual SHA-256.
* ``model_repo_unreachable`` (critical): the repository or the model's folder cannot
  be listed for ``unreachable_after_s`` (an unmounted volume, a dead network mount).
* ``model_unverified`` (warning): a served version has had no known-good manifest for
  ``unverified_after_s``: its canaries never proved it.
* ``model_gpu_mismatch`` (critical): a served version holds a GPU-specific engine that
  was proven on another GPU than the one serving it now.

Watched versions are those Triton served last (the last non-empty ready set, so a
version that failed to reload stays watched); before any health sample, every version
with a manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sentinel.base.modelrepo import FileEntry, Mismatch, compare
from sentinel.detect.episode import Episodes
from sentinel.detect.settings import IntegritySettings
from sentinel.vocabulary.findings import Judgement, Severity, Subject
from sentinel.vocabulary.model_files import FileDigest, ModelFilesSample, VersionFiles
from sentinel.vocabulary.samples import GpuSample, Sample, TritonHealth

FILES_CHANGED = "model_files_changed"
REPO_UNREACHABLE = "model_repo_unreachable"
UNVERIFIED = "model_unverified"
GPU_MISMATCH = "model_gpu_mismatch"


class IntegrityDetector:
    name = "model_integrity"
    accepts: tuple[type, ...] = (ModelFilesSample, TritonHealth, GpuSample)

    def __init__(self, settings: IntegritySettings | None = None) -> None:
        self.settings = settings or IntegritySettings()
        self._episodes = Episodes(self.name)
        self._served: dict[str, tuple[str, ...]] = {}
        self._ready: dict[str, bool | None] = {}
        """Whether Triton reported each model ready last (a failed load shows here)."""
        self._gpus: dict[str, str] = {}
        """GPU uuid -> name, from the latest GPU samples."""

    def observe(self, sample: Sample) -> list[Judgement]:
        if isinstance(sample, TritonHealth):
            if sample.model is not None:
                self._ready[sample.model] = sample.model_ready
                if sample.model_versions:
                    self._served[sample.model] = tuple(sample.model_versions)
            return []
        if isinstance(sample, GpuSample):
            if sample.name:
                self._gpus[sample.uuid] = sample.name
            return []
        if isinstance(sample, ModelFilesSample):
            return self._files(sample)
        return []

    def suspects(self, model: str) -> bool:
        return False  # reads no canaries

    def tick(self, now: float) -> list[Judgement]:
        return []

    def _files(self, sample: ModelFilesSample) -> list[Judgement]:
        s = self.settings
        out: list[Judgement] = []
        ep = self._episodes.get(
            REPO_UNREACHABLE,
            Subject(model=sample.model),
            min_duration_s=s.unreachable_after_s,
            clear_samples=s.clear_samples,
        )
        facts = {"repository": sample.repository, "error": sample.error}
        j = ep.update(
            sample.ts,
            breached=not sample.reachable,
            recovered=sample.reachable,
            fire=lambda started, ts: (
                Severity.CRITICAL,
                f"{sample.model}: model repository unreadable for {ts - started:.0f} s: "
                f"{sample.error}",
                {**facts, "unreachable_after_s": s.unreachable_after_s},
            ),
            clear_evidence=lambda: facts,
        )
        out += [j] if j is not None else []
        if not sample.reachable:
            return out  # nothing is known about the files: their findings stay as they are
        for v in self._watched(sample):
            out += self._changed(sample, v)
            out += self._unverified(sample, v)
            out += self._gpu(sample, v)
        return out

    def _watched(self, sample: ModelFilesSample) -> list[VersionFiles]:
        served = self._served.get(sample.model)
        if served is None:
            return [v for v in sample.versions if v.expected]
        return [v for v in sample.versions if v.version in served]

    def _changed(self, sample: ModelFilesSample, v: VersionFiles) -> list[Judgement]:
        mismatches = _mismatches(v) if v.expected else []
        ready = self._ready.get(sample.model)
        evidence = {
            "repository": sample.repository,
            "model_ready": ready,
            "version_present": v.present,
            "manifest_digest": v.manifest_digest,
            "files": [m.as_dict() for m in mismatches],
        }
        return self._judge(
            FILES_CHANGED,
            sample,
            v,
            bool(mismatches),
            lambda: (
                Severity.CRITICAL,
                _changed_summary(sample.model, v, mismatches)
                + ("; the model is not ready (it failed to load)" if ready is False else ""),
                evidence,
            ),
            {"repository": sample.repository, "manifest_digest": v.manifest_digest},
        )

    def _unverified(self, sample: ModelFilesSample, v: VersionFiles) -> list[Judgement]:
        breached = v.present and not v.expected
        ep = self._episodes.get(
            UNVERIFIED,
            Subject(model=sample.model, version=v.version),
            min_duration_s=self.settings.unverified_after_s,
        )
        j = ep.update(
            sample.ts,
            breached=breached,
            recovered=not breached,
            fire=lambda started, ts: (
                Severity.WARNING,
                f"{sample.model}:{v.version}: served for {ts - started:.0f} s and never "
                "proven good by its canaries (no known-good manifest)",
                {
                    "repository": sample.repository,
                    "files": [{"file": f.path, "actual": f.sha256} for f in v.files],
                    "unverified_after_s": self.settings.unverified_after_s,
                },
            ),
        )
        return [j] if j is not None else []

    def _gpu(self, sample: ModelFilesSample, v: VersionFiles) -> list[Judgement]:
        engines = [
            f.path for f in v.expected if f.path.endswith(tuple(self.settings.engine_suffixes))
        ]
        serving = sorted(set(self._gpus.values()))
        breached = bool(engines and v.expected_gpu and serving and v.expected_gpu not in serving)
        evidence = {"engines": engines, "proven_on": v.expected_gpu, "serving_on": serving}
        return self._judge(
            GPU_MISMATCH,
            sample,
            v,
            breached,
            lambda: (
                Severity.CRITICAL,
                f"{sample.model}:{v.version}: engine proven on {v.expected_gpu} is served on "
                f"{', '.join(serving)} (a TensorRT plan runs only on the GPU class it was built "
                "for)",
                evidence,
            ),
            evidence,
        )

    def _judge(
        self,
        kind: str,
        sample: ModelFilesSample,
        v: VersionFiles,
        breached: bool,
        fire: Callable[[], tuple[Severity, str, dict[str, Any]]],
        clear: dict[str, Any],
    ) -> list[Judgement]:
        """Opens at the first scan that shows it; clears after ``clear_samples`` good ones."""
        ep = self._episodes.get(
            kind,
            Subject(model=sample.model, version=v.version),
            clear_samples=self.settings.clear_samples,
        )
        j = ep.update(
            sample.ts,
            breached=breached,
            recovered=not breached,
            fire=lambda started, ts: fire(),
            clear_evidence=lambda: clear,
        )
        return [j] if j is not None else []


def _entries(files: tuple[FileDigest, ...]) -> dict[str, FileEntry | None]:
    return {
        f.path: FileEntry(f.sha256, f.size or 0) if f.sha256 is not None else None for f in files
    }


def _mismatches(v: VersionFiles) -> list[Mismatch]:
    expected = {f.path: FileEntry(f.sha256 or "", f.size or 0) for f in v.expected}
    return compare(expected, _entries(v.files) if v.present else {})


def _changed_summary(model: str, v: VersionFiles, mismatches: list[Mismatch]) -> str:
    if not v.present:
        return f"{model}:{v.version}: the version's folder is gone from the repository"
    first = mismatches[0] if mismatches else None
    if first is None:
        return f"{model}:{v.version}: files differ from the known-good manifest"
    actual = (first.actual or "none")[:12]
    more = f" and {len(mismatches) - 1} more" if len(mismatches) > 1 else ""
    return (
        f"{model}:{v.version}: {first.file} {first.problem} (sha256 {actual}..., known-good "
        f"{first.expected[:12]}...){more}; not a deploy (a new version is a new folder)"
    )
