"""The model-files probe: what is on disk in Triton's model repository, and what was good.

Each scan lists every watched model's version folders and emits one
:class:`ModelFilesSample` per model: every file's SHA-256 next to the known-good
manifest recorded for its version. Hashing is bounded: a file is hashed again only
when its size or mtime changed, and every file at least once per ``full_rehash_s``.

A version becomes known-good when ``known_good_after`` healthy canaries in a row were
served by it and no manifest exists for it yet: its manifest (with the GPU it ran on)
goes into the ``model_manifests`` table and, when ``backup_dir`` is set, its files are
copied there. An existing manifest is never overwritten by what is on disk now: files
that changed under a served version are what the ``model_integrity`` detector reports.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from sentinel.base import db
from sentinel.base.clock import Clock, SystemClock
from sentinel.base.modelrepo import (
    FileEntry,
    IntegrityError,
    Manifest,
    sha256_file,
    version_files,
    versions_on_disk,
    write_backup,
)
from sentinel.probes.settings import ModelFilesSettings
from sentinel.vocabulary.model_files import FileDigest, ModelFilesSample, VersionFiles
from sentinel.vocabulary.ports import SampleSink
from sentinel.vocabulary.samples import CanaryResult, GpuSample, Sample

log = structlog.get_logger(__name__)

MIGRATIONS = [
    """
    CREATE TABLE model_manifests (
        model TEXT NOT NULL,
        version TEXT NOT NULL,
        digest TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (model, version, digest)
    )
    """
]
db.register("model_manifests", MIGRATIONS)


class ManifestStore:
    """Known-good manifests in the state database (one row per distinct file set)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def add(self, manifest: Manifest) -> bool:
        """Keep a manifest; False when the same files were already recorded."""
        with self._conn:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO model_manifests (model, version, digest, recorded_at, data)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    manifest.model,
                    manifest.version,
                    manifest.digest,
                    manifest.recorded_at,
                    json.dumps(manifest.to_dict()),
                ),
            )
        return cur.rowcount > 0

    def latest(self, model: str, version: str) -> Manifest | None:
        row = self._conn.execute(
            "SELECT data FROM model_manifests WHERE model = ? AND version = ?"
            " ORDER BY recorded_at DESC LIMIT 1",
            (model, version),
        ).fetchone()
        return Manifest.from_dict(json.loads(row[0])) if row else None

    def all_latest(self, model: str | None = None) -> list[Manifest]:
        """The latest manifest of every (model, version), by model then version."""
        rows = self._conn.execute(
            "SELECT data FROM model_manifests m WHERE recorded_at = (SELECT MAX(recorded_at)"
            " FROM model_manifests n WHERE n.model = m.model AND n.version = m.version)"
            " AND (? IS NULL OR model = ?) ORDER BY model, CAST(version AS INTEGER)",
            (model, model),
        ).fetchall()
        return [Manifest.from_dict(json.loads(r[0])) for r in rows]


@dataclass(slots=True)
class _Cached:
    size: int
    mtime_ns: int
    sha256: str


@dataclass(slots=True)
class _Streak:
    version: str = ""
    healthy: int = 0


class ModelFilesProbe:
    """Scans the repository on an interval; also a pipeline observer (canaries, GPUs)."""

    name = "model_files"

    def __init__(
        self,
        settings: ModelFilesSettings,
        models: list[str],
        store: ManifestStore,
        clock: Clock | None = None,
    ) -> None:
        if settings.repository is None:
            raise ValueError("model_files.repository is not set")
        self.settings = settings
        self.repository: Path = settings.repository
        self.models = list(dict.fromkeys(settings.models or models))
        self.store = store
        self.clock = clock or SystemClock()
        self._cache: dict[Path, _Cached] = {}
        self._last_full: float | None = None
        self._streaks: dict[str, _Streak] = {}
        self._proven: dict[str, str] = {}
        """Model -> version that just earned known-good (recorded at the next scan)."""
        self._gpu: GpuSample | None = None
        self._lock = threading.Lock()
        self.hashed_files = 0
        """Files hashed so far (the cost the size+mtime cache bounds)."""

    # -- observer -------------------------------------------------------------------

    def observe(self, sample: Sample) -> None:
        """Count healthy canaries per served version; remember the GPU they ran on."""
        if isinstance(sample, GpuSample):
            if self._gpu is None or sample.index <= self._gpu.index:
                self._gpu = sample
            return
        if not isinstance(sample, CanaryResult) or sample.target != "triton":
            return
        if sample.model not in self.models or sample.recheck:
            return
        streak = self._streaks.setdefault(sample.model, _Streak())
        agreement = sample.agreement
        healthy = sample.outcome == "ok" and (
            agreement is None or agreement.top1 >= self.settings.min_agreement
        )
        if not healthy or sample.version != streak.version:
            streak.version, streak.healthy = sample.version, 0
        if healthy:
            streak.healthy += 1
            if streak.healthy >= self.settings.known_good_after and sample.version:
                with self._lock:
                    self._proven[sample.model] = sample.version

    # -- probe ----------------------------------------------------------------------

    async def run(self, sink: SampleSink, clock: Clock) -> None:
        while True:
            for sample in await self.once():
                await sink(sample)
            await clock.sleep(self.settings.interval_s)

    async def once(self) -> list[Sample]:
        return list(await asyncio.to_thread(self.scan))

    def scan(self) -> list[ModelFilesSample]:
        """One look at every watched model (blocking: file I/O)."""
        mono = self.clock.monotonic()
        if self._last_full is None or mono - self._last_full >= self.settings.full_rehash_s:
            self._cache.clear()  # everything is hashed again this scan
            self._last_full = mono
        out = []
        for model in self.models:
            out.append(self._scan_model(model, self.clock.now()))
        return out

    def _scan_model(self, model: str, ts: float) -> ModelFilesSample:
        model_dir = self.repository / model
        repo = str(self.repository)
        try:
            if not self.repository.is_dir():
                raise FileNotFoundError(f"{self.repository}: not a directory (not mounted?)")
            if not model_dir.is_dir():
                raise FileNotFoundError(f"{model_dir}: no such model folder")
            on_disk = versions_on_disk(model_dir)
        except OSError as exc:
            return ModelFilesSample(ts, model, repo, reachable=False, error=str(exc))
        versions: list[VersionFiles] = []
        hashed = {v: self._hash_version(model_dir, v) for v in on_disk}
        self._record_proven(model, model_dir, hashed)
        manifests = {m.version: m for m in self.store.all_latest(model)}
        for version in sorted(set(on_disk) | set(manifests), key=_version_key):
            m = manifests.get(version)
            versions.append(
                VersionFiles(
                    version=version,
                    present=version in hashed,
                    files=tuple(hashed.get(version, ())),
                    expected=_digests(m.files) if m else (),
                    expected_gpu=m.gpu_name if m else None,
                    manifest_digest=m.digest if m else None,
                )
            )
        return ModelFilesSample(ts, model, repo, versions=tuple(versions))

    def _hash_version(self, model_dir: Path, version: str) -> list[FileDigest]:
        out = []
        for rel in sorted(version_files(model_dir, version)):
            path = model_dir / rel
            try:
                st = path.stat()
                cached = self._cache.get(path)
                if cached is None or (cached.size, cached.mtime_ns) != (st.st_size, st.st_mtime_ns):
                    cached = _Cached(st.st_size, st.st_mtime_ns, sha256_file(path))
                    self._cache[path] = cached
                    self.hashed_files += 1
                out.append(FileDigest(rel, cached.sha256, cached.size))
            except OSError:
                self._cache.pop(path, None)
                out.append(FileDigest(rel, None, None))
        return out

    def _record_proven(
        self, model: str, model_dir: Path, hashed: dict[str, list[FileDigest]]
    ) -> None:
        with self._lock:
            version = self._proven.pop(model, None)
        files = hashed.get(version or "")
        if version is None or not files or any(f.sha256 is None for f in files):
            return
        if self.store.latest(model, version) is not None:
            return  # proven before: what differs now is a change, not a deploy
        gpu = self._gpu
        manifest = Manifest(
            model=model,
            version=version,
            files={f.path: FileEntry(f.sha256 or "", f.size or 0) for f in files},
            recorded_at=self.clock.now(),
            gpu_name=gpu.name if gpu else None,
            compute_capability=gpu.compute_capability if gpu else None,
            driver=gpu.driver_version if gpu else None,
            extra={"repository": str(self.repository)},
        )
        self.store.add(manifest)
        log.info("known_good_recorded", model=model, version=version, digest=manifest.digest)
        if self.settings.backup_dir is not None:
            try:
                path = write_backup(model_dir, manifest, self.settings.backup_dir)
                log.info("known_good_backed_up", model=model, version=version, path=str(path))
            except (OSError, IntegrityError) as exc:
                log.error("known_good_backup_failed", model=model, version=version, error=str(exc))


def _digests(files: Mapping[str, FileEntry]) -> tuple[FileDigest, ...]:
    return tuple(FileDigest(p, e.sha256, e.size) for p, e in sorted(files.items()))


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)
