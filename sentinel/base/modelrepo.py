"""Files of a Triton model repository: known-good manifests, backups, restores.

A manifest lists the SHA-256 and size of every file of one model version, paths
relative to the model's folder (``config.pbtxt``, ``1/model.plan``), with the GPU it
was proven on. A backup of a version is a folder holding ``manifest.json`` and the
files under ``files/``; it is written to a temporary name and renamed into place only
once every copied byte matched the manifest, so a half-written backup never exists.
Restoring refuses a backup that does not match its own manifest.

Shared by the probe (records manifests, exports backups), the restore action and the
CLI, which is why it sits in base: none of them may import another.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinel.base.errors import SentinelError

MANIFEST_NAME = "manifest.json"
FILES_DIR = "files"
CONFIG_NAME = "config.pbtxt"
_SKIP_DIRS = frozenset({"__pycache__"})
"""Folders Triton's backends write into a version folder themselves (not deployed files)."""
_CHUNK = 1 << 20


class IntegrityError(SentinelError):
    """Files do not match their manifest (a damaged backup or repository)."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """What a file should be: its SHA-256 and size in bytes."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One file that is not what its manifest says."""

    file: str
    problem: str
    """'changed', 'truncated' (shorter than recorded), 'missing' or 'unreadable'."""
    expected: str
    actual: str | None
    expected_size: int
    actual_size: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "problem": self.problem,
            "expected": self.expected,
            "actual": self.actual,
            "expected_size": self.expected_size,
            "actual_size": self.actual_size,
        }


@dataclass(frozen=True, slots=True)
class Manifest:
    """The known-good files of one model version and where they were proven."""

    model: str
    version: str
    files: Mapping[str, FileEntry]
    recorded_at: float
    gpu_name: str | None = None
    compute_capability: str | None = None
    driver: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """One SHA-256 over the (path, digest) pairs: equal files, equal digest."""
        h = hashlib.sha256()
        for path in sorted(self.files):
            h.update(f"{path}\0{self.files[path].sha256}\n".encode())
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "recorded_at": self.recorded_at,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "driver": self.driver,
            "digest": self.digest,
            "files": {
                p: {"sha256": e.sha256, "size": e.size} for p, e in sorted(self.files.items())
            },
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Rebuild from :meth:`to_dict`; IntegrityError naming what is wrong."""
        try:
            files = {
                str(p): FileEntry(str(e["sha256"]), int(e["size"]))
                for p, e in dict(data["files"]).items()
            }
            manifest = cls(
                model=str(data["model"]),
                version=str(data["version"]),
                files=files,
                recorded_at=float(data["recorded_at"]),
                gpu_name=data.get("gpu_name"),
                compute_capability=data.get("compute_capability"),
                driver=data.get("driver"),
                extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(f"not a manifest: {exc!r}") from exc
        for path in files:
            _check_relative(path)
        if data.get("digest") not in (None, manifest.digest):
            raise IntegrityError("manifest digest does not match its file list (edited?)")
        return manifest


def sha256_file(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB chunks (engines are gigabytes)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def version_files(model_dir: Path, version: str) -> list[str]:
    """Paths (relative to ``model_dir``) of the model's config and the version's files."""
    out = [CONFIG_NAME] if (model_dir / CONFIG_NAME).is_file() else []
    root = model_dir / version
    if root.is_dir():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            for name in sorted(filenames):
                out.append((Path(dirpath) / name).relative_to(model_dir).as_posix())
    return out


def versions_on_disk(model_dir: Path) -> list[str]:
    """Numeric version folders of a model, in numeric order."""
    if not model_dir.is_dir():
        return []
    return sorted((p.name for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=int)


def hash_version(model_dir: Path, version: str) -> dict[str, FileEntry]:
    """Every file of a version (and the config) hashed now."""
    return {
        p: FileEntry(sha256_file(model_dir / p), (model_dir / p).stat().st_size)
        for p in version_files(model_dir, version)
    }


def compare(
    expected: Mapping[str, FileEntry], actual: Mapping[str, FileEntry | None]
) -> list[Mismatch]:
    """Files of ``expected`` that ``actual`` lacks or holds differently (extras ignored:
    backends write caches next to a model)."""
    out = []
    for path in sorted(expected):
        want = expected[path]
        have = actual.get(path)
        if path not in actual:
            out.append(Mismatch(path, "missing", want.sha256, None, want.size, None))
        elif have is None:
            out.append(Mismatch(path, "unreadable", want.sha256, None, want.size, None))
        elif have.sha256 != want.sha256:
            problem = "truncated" if have.size < want.size else "changed"
            out.append(Mismatch(path, problem, want.sha256, have.sha256, want.size, have.size))
    return out


def _check_relative(path: str) -> None:
    p = Path(path)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise IntegrityError(f"{path!r}: manifest paths must stay inside the model folder")


# -- backups --------------------------------------------------------------------------


def backup_path(root: Path, model: str, version: str) -> Path:
    return root / model / version


def write_backup(model_dir: Path, manifest: Manifest, root: Path) -> Path:
    """Copy a version's files into ``root/MODEL/VERSION``, checking each against the
    manifest while copying; IntegrityError (nothing written) when one differs."""
    dest = backup_path(root, manifest.model, manifest.version)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{manifest.version}.", dir=dest.parent))
    try:
        for rel, entry in manifest.files.items():
            got = _copy_hashed(model_dir / rel, tmp / FILES_DIR / rel)
            if got != entry:
                raise IntegrityError(
                    f"{manifest.model}/{rel}: sha256 {got.sha256} differs from the known-good "
                    f"{entry.sha256}; not backed up"
                )
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _copy_hashed(src: Path, dst: Path) -> FileEntry:
    """Copy a file, hashing the bytes written; fsync so a crash leaves no torn copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)
    return FileEntry(h.hexdigest(), size)


def read_backup(path: Path) -> Manifest:
    """The manifest of one backed-up version (``root/MODEL/VERSION``)."""
    try:
        data = json.loads((path / MANIFEST_NAME).read_text(encoding="utf-8"))
    except OSError as exc:
        raise IntegrityError(f"{path}: no readable {MANIFEST_NAME}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise IntegrityError(f"{path / MANIFEST_NAME}: invalid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise IntegrityError(f"{path / MANIFEST_NAME}: expected a JSON object")
    return Manifest.from_dict(data)


def verify_backup(path: Path) -> tuple[Manifest, list[Mismatch]]:
    """Hash every file of a backed-up version against its manifest."""
    manifest = read_backup(path)
    files = path / FILES_DIR
    actual: dict[str, FileEntry | None] = {}
    for rel in manifest.files:
        f = files / rel
        if not f.is_file():
            continue
        try:
            actual[rel] = FileEntry(sha256_file(f), f.stat().st_size)
        except OSError:
            actual[rel] = None
    return manifest, compare(manifest.files, actual)


def find_backups(root: Path) -> list[Path]:
    """Every backed-up version under ``root`` (folders holding a manifest)."""
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.glob(f"*/*/{MANIFEST_NAME}"))


def latest_backup(root: Path, model: str, version: str | None = None) -> Path | None:
    """The backup to restore: the given version's, else the highest version backed up."""
    if version:
        path = backup_path(root, model, version)
        return path if (path / MANIFEST_NAME).is_file() else None
    versions = [p for p in find_backups(root) if p.parent.name == model and p.name.isdigit()]
    return max(versions, key=lambda p: int(p.name), default=None)


# -- restore --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore changed, and where the files it replaced were kept (for undo)."""

    manifest: Manifest
    replaced: list[str]
    """Files that differed or were missing and were written from the backup."""
    quarantine: Path
    """The replaced files as they were (``put_back`` restores them)."""
    created: list[str]
    """Files that did not exist before (``put_back`` removes them)."""


def restore(backup: Path, model_dir: Path, quarantine: Path) -> Restored:
    """Put a verified backup's files into ``model_dir``; IntegrityError before touching
    anything when the backup does not match its manifest, or after, when the written
    files do not (the quarantine then holds what was there)."""
    manifest, problems = verify_backup(backup)
    if problems:
        listed = ", ".join(f"{m.file} ({m.problem})" for m in problems)
        raise IntegrityError(f"{backup}: backup does not match its manifest: {listed}")
    current = _hash_present(model_dir, manifest.files)
    wrong = [m.file for m in compare(manifest.files, current)]
    created = [p for p in wrong if not (model_dir / p).exists()]
    for rel in wrong:
        target = model_dir / rel
        if target.exists():
            keep = quarantine / rel
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(target, keep)
        tmp = target.parent / f".{target.name}.sentinel-restore"
        got = _copy_hashed(backup / FILES_DIR / rel, tmp)
        os.replace(tmp, target)
        if got != manifest.files[rel]:
            raise IntegrityError(f"{rel}: written copy differs from the manifest")
    after = compare(manifest.files, _hash_present(model_dir, manifest.files))
    if after:
        raise IntegrityError(
            "repository still differs after restore: " + ", ".join(m.file for m in after)
        )
    return Restored(manifest, wrong, quarantine, created)


def put_back(model_dir: Path, quarantine: Path, created: Iterable[str]) -> None:
    """Undo a restore: the quarantined files go back, files it created are removed."""
    for rel in created:
        (model_dir / rel).unlink(missing_ok=True)
    if not quarantine.is_dir():
        return
    for src in sorted(p for p in quarantine.rglob("*") if p.is_file()):
        dst = model_dir / src.relative_to(quarantine)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.parent / f".{dst.name}.sentinel-undo"
        shutil.copy2(src, tmp)
        os.replace(tmp, dst)


def _hash_present(model_dir: Path, wanted: Iterable[str]) -> dict[str, FileEntry | None]:
    out: dict[str, FileEntry | None] = {}
    for rel in wanted:
        f = model_dir / rel
        if not f.is_file():
            continue
        try:
            out[rel] = FileEntry(sha256_file(f), f.stat().st_size)
        except OSError:
            out[rel] = None
    return out
