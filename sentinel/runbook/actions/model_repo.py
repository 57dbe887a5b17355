"""Model repository actions: check a model's files against its known-good backup, and
restore them (then reload the model through Triton).

The repository and the backups are ``playbooks.model_repository`` and
``playbooks.backup_dir`` (by default the ``model_files`` section's); a step may name
another backup folder with ``with: {backup_dir: DIR}``. A backup that does not match its own
manifest is never restored from.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import Field

from sentinel.base import modelrepo
from sentinel.base.modelrepo import IntegrityError
from sentinel.runbook.actions.base import ActionContext, ActionParams, ActionSpec, NoUndo, param
from sentinel.runbook.errors import ActionError


def _folders(ctx: ActionContext, params: dict[str, Any]) -> tuple[Path, Path]:
    repo = ctx.settings.model_repository
    if repo is None:
        raise ActionError("playbooks.model_repository (or model_files.repository) is not set")
    source = param(params, "backup_dir", str, "") or ctx.settings.backup_dir
    if not source:
        raise ActionError("no backup folder: set model_files.backup_dir or with.backup_dir")
    return Path(repo), Path(source)


def _backup(root: Path, model: str, version: str) -> Path:
    path = modelrepo.latest_backup(root, model, version or None)
    if path is None:
        which = f"version {version}" if version else "any version"
        raise ActionError(f"no known-good backup of {model} ({which}) under {root}")
    return path


def check(repo: Path, root: Path, model: str, version: str) -> dict[str, Any]:
    """What a restore would do (blocking: hashes the backup and the repository)."""
    try:
        backup = _backup(root, model, version)
    except ActionError as exc:
        return {"model": model, "restorable": False, "damaged": None, "reason": str(exc)}
    try:
        manifest, bad_backup = modelrepo.verify_backup(backup)
    except IntegrityError as exc:
        return {"model": model, "backup": str(backup), "restorable": False, "reason": str(exc)}
    current = {
        rel: modelrepo.FileEntry(modelrepo.sha256_file(p), p.stat().st_size)
        for rel in manifest.files
        if (p := repo / model / rel).is_file()
    }
    damaged = modelrepo.compare(manifest.files, dict(current))
    reason = ""
    if bad_backup:
        reason = "the backup does not match its manifest: " + ", ".join(
            f"{m.file} ({m.problem})" for m in bad_backup
        )
    elif not damaged:
        reason = "the repository already matches the known-good manifest; a restore cannot help"
    return {
        "model": model,
        "version": manifest.version,
        "backup": str(backup),
        "manifest_digest": manifest.digest,
        "proven_on": manifest.gpu_name,
        "backup_problems": [m.as_dict() for m in bad_backup],
        "damaged": [m.as_dict() for m in damaged],
        "restorable": bool(damaged) and not bad_backup,
        "reason": reason,
    }


class ModelRepoParams(ActionParams):
    model: str = Field(min_length=1)
    """The model whose files are compared or restored."""
    version: str = ""
    """A version (default: the latest backed up)."""
    backup_dir: str = ""
    """Another backup folder (default: playbooks.backup_dir / model_files.backup_dir)."""


class CheckRepo(NoUndo):
    """Compare a model's files with its known-good backup (reads only)."""

    spec = ActionSpec(
        "model_repo.check",
        side_effects=False,
        summary="compare a model's files with its known-good backup",
        params=ModelRepoParams,
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        repo, root = _folders(ctx, params)
        model = param(params, "model", str)
        version = param(params, "version", str, "")
        try:
            return await asyncio.to_thread(check, repo, root, model, version)
        except OSError as exc:
            raise ActionError(f"cannot read the repository or backup: {exc}") from exc


class RestoreKnownGood:
    """Put a model version's known-good files back and reload the model; undo puts the
    replaced files back and reloads again."""

    spec = ActionSpec(
        "model_repo.restore",
        side_effects=True,
        mutating=True,
        undoable=True,
        summary="restore a model's last known-good files from backup and reload it",
        params=ModelRepoParams,
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        repo, root = _folders(ctx, params)
        model = param(params, "model", str)
        backup = _backup(root, model, param(params, "version", str, ""))
        quarantine = root / ".quarantine" / (ctx.run_id or "manual") / model
        try:
            done = await asyncio.to_thread(modelrepo.restore, backup, repo / model, quarantine)
        except IntegrityError as exc:
            raise ActionError(f"refused: {exc}") from exc
        except OSError as exc:
            raise ActionError(f"restore of {model} failed: {exc}") from exc
        output = {
            "model": model,
            "version": done.manifest.version,
            "backup": str(backup),
            "manifest_digest": done.manifest.digest,
            "replaced": done.replaced,
            "created": done.created,
            "quarantine": str(quarantine),
        }
        await _reload(ctx, model)
        return output

    async def undo(
        self, ctx: ActionContext, params: dict[str, Any], output: dict[str, Any]
    ) -> None:
        repo, _ = _folders(ctx, params)
        model = str(output["model"])
        try:
            await asyncio.to_thread(
                modelrepo.put_back, repo / model, Path(output["quarantine"]), output["created"]
            )
        except OSError as exc:
            raise ActionError(f"putting {model}'s replaced files back failed: {exc}") from exc
        await _reload(ctx, model)


async def _reload(ctx: ActionContext, model: str) -> None:
    """Triton reads the model's files again (explicit model control)."""
    try:
        await ctx.need_triton().load_model(model)
    except ActionError:
        raise
    except Exception as exc:
        raise ActionError(f"files restored, but Triton did not load {model}: {exc}") from exc
