"""What the model-files probe sees: the files of a model in Triton's repository.

One :class:`ModelFilesSample` per model and scan, with each version's files as they
are now next to the known-good manifest recorded for it (empty when none is), so the
``model_integrity`` detector judges from samples alone and replays like the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class FileDigest:
    """One file: path relative to the model's folder (``config.pbtxt``, ``1/model.plan``)."""

    path: str
    sha256: str | None
    """None when the file could not be read."""
    size: int | None = None


@dataclass(frozen=True, slots=True)
class VersionFiles:
    """One version folder now, and its known-good manifest."""

    version: str
    present: bool = True
    """False when the folder is gone but a manifest for it exists."""
    files: tuple[FileDigest, ...] = ()
    """The version's files and the model's config.pbtxt as on disk now."""
    expected: tuple[FileDigest, ...] = ()
    """The known-good manifest's files (empty: no manifest recorded yet)."""
    expected_gpu: str | None = None
    """Name of the GPU the manifest was proven on (None: CPU or unknown)."""
    manifest_digest: str | None = None


@dataclass(frozen=True, slots=True)
class ModelFilesSample:
    """One scan of one model's folder in the repository."""

    TYPE: ClassVar[str] = "model_files"
    ts: float
    model: str
    repository: str
    reachable: bool = True
    """False when the repository (or the model's folder) could not be listed."""
    error: str | None = None
    versions: tuple[VersionFiles, ...] = ()
