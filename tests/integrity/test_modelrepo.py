"""Manifests, backups and restores of a model repository's files (real files on disk)."""

from __future__ import annotations

from pathlib import Path

import pytest
from integrity_helpers import copy_repository, flip_byte, manifest_of, truncate

from sentinel.base.modelrepo import (
    IntegrityError,
    Manifest,
    latest_backup,
    put_back,
    restore,
    verify_backup,
    write_backup,
)


def test_manifest_lists_config_and_version_files_with_digests(tmp_path: Path) -> None:
    """A manifest covers config.pbtxt and every file of the version, with its size."""
    repo = copy_repository(tmp_path)
    manifest = manifest_of(repo)
    assert ["1/model.py", "1/weights.npz", "config.pbtxt"] == sorted(manifest.files)
    size = (repo / "digits" / "1" / "weights.npz").stat().st_size
    assert size == manifest.files["1/weights.npz"].size


def test_manifest_round_trips_and_detects_an_edited_list(tmp_path: Path) -> None:
    """to_dict/from_dict keep a manifest; a file list edited by hand is refused."""
    manifest = manifest_of(copy_repository(tmp_path))
    assert manifest == Manifest.from_dict(manifest.to_dict())
    data = manifest.to_dict()
    data["files"]["1/model.py"]["sha256"] = "0" * 64
    with pytest.raises(IntegrityError):
        Manifest.from_dict(data)


def test_backup_verifies_clean_and_refuses_one_flipped_byte(tmp_path: Path) -> None:
    """A fresh backup verifies; one flipped byte is reported with both digests."""
    repo = copy_repository(tmp_path)
    manifest = manifest_of(repo)
    path = write_backup(repo / "digits", manifest, tmp_path / "backup")
    assert [] == verify_backup(path)[1]
    flip_byte(path / "files" / "1" / "weights.npz")
    problems = verify_backup(path)[1]
    assert ["1/weights.npz"] == [p.file for p in problems]
    assert "changed" == problems[0].problem
    assert manifest.files["1/weights.npz"].sha256 == problems[0].expected
    assert problems[0].actual not in (None, problems[0].expected)


def test_backup_refuses_files_that_no_longer_match_the_manifest(tmp_path: Path) -> None:
    """Backing up damaged files is refused and leaves no partial backup."""
    repo = copy_repository(tmp_path)
    manifest = manifest_of(repo)
    truncate(repo / "digits" / "1" / "weights.npz")
    with pytest.raises(IntegrityError, match=r"weights\.npz"):
        write_backup(repo / "digits", manifest, tmp_path / "backup")
    assert latest_backup(tmp_path / "backup", "digits") is None


def test_restore_puts_known_good_files_back_and_undo_reverts(tmp_path: Path) -> None:
    """restore writes the backup's bytes over a truncated file; put_back returns it."""
    repo = copy_repository(tmp_path)
    weights = repo / "digits" / "1" / "weights.npz"
    good = weights.read_bytes()
    backup = write_backup(repo / "digits", manifest_of(repo), tmp_path / "backup")
    truncate(weights)
    damaged = weights.read_bytes()
    done = restore(backup, repo / "digits", tmp_path / "quarantine")
    assert ["1/weights.npz"] == done.replaced
    assert good == weights.read_bytes()
    put_back(repo / "digits", done.quarantine, done.created)
    assert damaged == weights.read_bytes()


def test_restore_recreates_a_deleted_file(tmp_path: Path) -> None:
    """A file deleted by hand comes back; undo removes it again."""
    repo = copy_repository(tmp_path)
    model_py = repo / "digits" / "1" / "model.py"
    backup = write_backup(repo / "digits", manifest_of(repo), tmp_path / "backup")
    model_py.unlink()
    done = restore(backup, repo / "digits", tmp_path / "quarantine")
    assert ["1/model.py"] == done.created
    assert model_py.is_file()
    put_back(repo / "digits", done.quarantine, done.created)
    assert not model_py.exists()


def test_restore_refuses_a_backup_with_one_flipped_byte(tmp_path: Path) -> None:
    """A corrupt backup is refused before anything in the repository changes."""
    repo = copy_repository(tmp_path)
    backup = write_backup(repo / "digits", manifest_of(repo), tmp_path / "backup")
    flip_byte(backup / "files" / "1" / "weights.npz")
    truncate(repo / "digits" / "1" / "weights.npz")
    before = (repo / "digits" / "1" / "weights.npz").read_bytes()
    with pytest.raises(IntegrityError, match="does not match its manifest"):
        restore(backup, repo / "digits", tmp_path / "quarantine")
    assert before == (repo / "digits" / "1" / "weights.npz").read_bytes()
    assert not (tmp_path / "quarantine").exists()


def test_latest_backup_picks_the_highest_version(tmp_path: Path) -> None:
    """Without a version, the highest backed-up version number is restored (10 > 9)."""
    repo = copy_repository(tmp_path)
    for version in ("9", "10"):
        (repo / "digits" / version).mkdir(exist_ok=True)
        (repo / "digits" / version / "model.py").write_text(version)
        write_backup(repo / "digits", manifest_of(repo, version=version), tmp_path / "b")
    found = latest_backup(tmp_path / "b", "digits")
    assert found is not None
    assert "10" == found.name
