"""Shared by the integrity tests: a tmp copy of the example repository and its manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

from sentinel.base.modelrepo import Manifest, hash_version

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_REPOSITORY = ROOT / "examples" / "model_repository"
GOLDEN_DIGITS = ROOT / "examples" / "golden" / "digits.npz"


def copy_repository(tmp: Path) -> Path:
    """A private copy of examples/model_repository (tests never touch the shipped one)."""
    repo = tmp / "model_repository"
    shutil.copytree(EXAMPLE_REPOSITORY, repo, ignore=shutil.ignore_patterns("__pycache__"))
    return repo


def manifest_of(repo: Path, model: str = "digits", version: str = "1") -> Manifest:
    """The manifest of the files on disk now, as if its canaries had just proven them."""
    return Manifest(model, version, hash_version(repo / model, version), 1_700_000_000.0)


def flip_byte(path: Path, offset: int = 100) -> None:
    """Invert one byte in place (same size: a size check alone would not see it)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    """Cut a file to half its size, as an interrupted copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
