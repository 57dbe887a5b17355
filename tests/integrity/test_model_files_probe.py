"""The model-files probe on a real folder: bounded hashing and known-good manifests."""

from __future__ import annotations

import os
from pathlib import Path

from integrity_helpers import copy_repository, flip_byte, truncate

from sentinel.base.clock import FakeClock
from sentinel.base.db import open_db
from sentinel.base.modelrepo import verify_backup
from sentinel.probes.model_files import ManifestStore, ModelFilesProbe
from sentinel.probes.settings import ModelFilesSettings
from sentinel.vocabulary.model_files import ModelFilesSample
from sentinel.vocabulary.samples import Agreement, CanaryResult, GpuSample


def make_probe(tmp: Path, **settings: object) -> tuple[ModelFilesProbe, FakeClock, Path]:
    repo = copy_repository(tmp)
    clock = FakeClock()
    conn = open_db(":memory:")
    options = {"repository": repo, "full_rehash_s": 3600.0, **settings}
    probe = ModelFilesProbe(ModelFilesSettings(**options), ["digits"], ManifestStore(conn), clock)
    return probe, clock, repo


def healthy(ts: float, version: str = "1", top1: float = 1.0) -> CanaryResult:
    return CanaryResult(ts, "digits", version, 1, "ok", 0.01, agreement=Agreement(0.0, 1.0, top1))


def prove(probe: ModelFilesProbe, clock: FakeClock, version: str = "1") -> None:
    for _ in range(probe.settings.known_good_after):
        probe.observe(healthy(clock.now(), version))


def only(samples: list[ModelFilesSample]) -> ModelFilesSample:
    assert 1 == len(samples)
    return samples[0]


def test_unchanged_files_are_not_hashed_again(tmp_path: Path) -> None:
    """A second scan of unchanged files hashes nothing (size and mtime decide)."""
    probe, _, _ = make_probe(tmp_path)
    probe.scan()
    assert 3 == probe.hashed_files
    probe.scan()
    assert 3 == probe.hashed_files


def test_a_changed_file_is_hashed_again(tmp_path: Path) -> None:
    """A file whose size changed is hashed again; the others are not."""
    probe, _, repo = make_probe(tmp_path)
    probe.scan()
    truncate(repo / "digits" / "1" / "weights.npz")
    probe.scan()
    assert 4 == probe.hashed_files


def test_full_rehash_catches_a_change_that_kept_size_and_mtime(tmp_path: Path) -> None:
    """A flipped byte with the old mtime is seen only at the slow full re-hash."""
    probe, clock, repo = make_probe(tmp_path, full_rehash_s=600.0)
    weights = repo / "digits" / "1" / "weights.npz"
    first = only(probe.scan()).versions[0].files
    st = weights.stat()
    flip_byte(weights)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    clock.set(300.0)
    assert first == only(probe.scan()).versions[0].files
    clock.set(601.0)
    after = {f.path: f.sha256 for f in only(probe.scan()).versions[0].files}
    assert {f.path: f.sha256 for f in first}["1/weights.npz"] != after["1/weights.npz"]


def test_healthy_canaries_record_a_manifest_with_the_gpu(tmp_path: Path) -> None:
    """known_good_after healthy canaries prove the served version; its GPU is kept."""
    probe, clock, _ = make_probe(tmp_path, known_good_after=3)
    probe.observe(GpuSample(clock.now(), 0, "GPU-1", name="NVIDIA H200", compute_capability="9.0"))
    probe.observe(healthy(clock.now()))
    probe.observe(healthy(clock.now()))
    assert () == only(probe.scan()).versions[0].expected
    probe.observe(healthy(clock.now()))
    version = only(probe.scan()).versions[0]
    assert version.files == version.expected
    assert "NVIDIA H200" == version.expected_gpu
    manifest = probe.store.latest("digits", "1")
    assert manifest is not None
    assert "9.0" == manifest.compute_capability


def test_drifting_canaries_prove_nothing(tmp_path: Path) -> None:
    """Canaries that answer with poor agreement never make a version known-good."""
    probe, clock, _ = make_probe(tmp_path, known_good_after=1)
    probe.observe(healthy(clock.now(), top1=0.5))
    probe.scan()
    assert probe.store.latest("digits", "1") is None


def test_damaged_files_never_replace_a_known_good_manifest(tmp_path: Path) -> None:
    """After damage, passing canaries (from the model still in memory) record nothing new."""
    probe, clock, repo = make_probe(tmp_path)
    prove(probe, clock)
    good = only(probe.scan()).versions[0].expected
    truncate(repo / "digits" / "1" / "weights.npz")
    prove(probe, clock)
    version = only(probe.scan()).versions[0]
    assert good == version.expected
    assert version.files != version.expected


def test_a_proven_version_is_backed_up_verifiably(tmp_path: Path) -> None:
    """With backup_dir set, a newly proven version is copied with its manifest."""
    probe, clock, _ = make_probe(tmp_path, backup_dir=tmp_path / "backup")
    prove(probe, clock)
    probe.scan()
    manifest, problems = verify_backup(tmp_path / "backup" / "digits" / "1")
    assert [] == problems
    assert "1" == manifest.version


def test_missing_repository_is_unreachable(tmp_path: Path) -> None:
    """A repository that is not there (an unmounted volume) gives an unreachable sample."""
    probe, _, repo = make_probe(tmp_path)
    repo.rename(tmp_path / "elsewhere")
    sample = only(probe.scan())
    assert not sample.reachable
    assert sample.error is not None
