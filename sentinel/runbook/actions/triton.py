"""Triton model control: load with a config patch (snapshotting for undo),
unload, wait until ready."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field

from sentinel.base.duration import Duration
from sentinel.runbook.actions.base import (
    ActionContext,
    ActionParams,
    ActionSpec,
    NoUndo,
    classify,
    param,
)
from sentinel.runbook.errors import ActionError

_POLICIES = ("latest", "all", "specific")


def apply_patch(config: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Triton model config (JSON form) with the patch's changes."""
    new = copy.deepcopy(config)
    for key, value in patch.items():
        if key == "precision":
            _set_parameter(new, "precision", str(value))
        elif key == "parameters":
            if not isinstance(value, dict):
                raise ActionError("with.patch.parameters: expected a mapping of strings")
            for name, v in value.items():
                _set_parameter(new, str(name), str(v))
        elif key == "default_model_filename":
            new["default_model_filename"] = str(value)
        elif key == "max_batch_size":
            new["max_batch_size"] = _int(value, "max_batch_size", minimum=0)
            _fit_preferred_sizes(new)
        elif key == "version_policy":
            new["version_policy"] = _version_policy(value)
        elif key == "dynamic_batching":
            if value is None or value is False:
                new.pop("dynamic_batching", None)
            elif isinstance(value, dict):
                new["dynamic_batching"] = {**new.get("dynamic_batching", {}), **value}
            else:
                raise ActionError("with.patch.dynamic_batching: a mapping, or false to turn off")
        elif key == "instance_count":
            count = _int(value, "instance_count", minimum=1)
            groups = new.get("instance_group") or [{}]
            new["instance_group"] = [{**g, "count": count} for g in groups]
        else:
            raise ActionError(
                f"with.patch.{key}: not a patchable field (precision, parameters, "
                "default_model_filename, max_batch_size, version_policy, dynamic_batching, "
                "instance_count)"
            )
    return new


def _fit_preferred_sizes(config: dict[str, Any]) -> None:
    """Triton refuses preferred batch sizes above max_batch_size: drop those."""
    batching = config.get("dynamic_batching")
    limit = config["max_batch_size"]
    if not isinstance(batching, dict) or not batching.get("preferred_batch_size") or limit < 1:
        return
    batching["preferred_batch_size"] = [
        size for size in batching["preferred_batch_size"] if size <= limit
    ] or [limit]


def revert_patch(
    current: dict[str, Any], original: dict[str, Any], patch: dict[str, Any]
) -> dict[str, Any]:
    """``current`` with just the fields ``patch`` changed put back as in ``original``.

    Other changes made since (an operator's fix, a new engine) are kept.
    """
    new = copy.deepcopy(current)
    for key in patch:
        if key == "precision":
            _copy_parameter(new, original, "precision")
        elif key == "parameters":
            for name in patch[key]:
                _copy_parameter(new, original, str(name))
        elif key == "instance_count":
            _copy_field(new, original, "instance_group")
        elif key == "max_batch_size":
            _copy_field(new, original, key)
            _copy_preferred_sizes(new, original)
        else:
            _copy_field(new, original, key)
    return new


def _copy_preferred_sizes(new: dict[str, Any], original: dict[str, Any]) -> None:
    before = (original.get("dynamic_batching") or {}).get("preferred_batch_size")
    batching = new.get("dynamic_batching")
    if isinstance(batching, dict) and before is not None:
        batching["preferred_batch_size"] = copy.deepcopy(before)


def _copy_field(new: dict[str, Any], original: dict[str, Any], key: str) -> None:
    if key in original:
        new[key] = copy.deepcopy(original[key])
    else:
        new.pop(key, None)


def _copy_parameter(new: dict[str, Any], original: dict[str, Any], name: str) -> None:
    params = dict(new.get("parameters") or {})
    before = (original.get("parameters") or {}).get(name)
    if before is None:
        params.pop(name, None)
    else:
        params[name] = copy.deepcopy(before)
    new["parameters"] = params


def _set_parameter(config: dict[str, Any], name: str, value: str) -> None:
    params = dict(config.get("parameters") or {})
    params[name] = {"string_value": value}
    config["parameters"] = params


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ActionError(f"with.patch.{name}: expected an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError as exc:
        raise ActionError(f"with.patch.{name}: expected an integer, got {value!r}") from exc
    if number < minimum:
        raise ActionError(f"with.patch.{name}: must be >= {minimum}, got {number}")
    return number


def _version_policy(value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _POLICIES:
        return dict(value)
    raise ActionError(
        "with.patch.version_policy: one of {latest: {num_versions: N}}, {all: {}}, "
        "{specific: {versions: [..]}}"
    )


class ConfigPatch(ActionParams):
    """The fields of a model config a playbook may change."""

    precision: str | None = None
    """Sets the config parameter ``precision`` (e.g. fp16)."""
    parameters: dict[str, str | int | float | bool] | None = None
    """Config parameters, name: value (written as strings)."""
    default_model_filename: str | None = None
    """The file the model loads (e.g. model_fp16.plan)."""
    max_batch_size: int | None = Field(None, ge=0)
    """Preferred batch sizes above it are dropped."""
    version_policy: dict[str, Any] | None = None
    """{latest: {num_versions: N}}, {all: {}} or {specific: {versions: [..]}}."""
    dynamic_batching: dict[str, Any] | bool | None = None
    """Merged into the dynamic batcher's settings; false turns it off."""
    instance_count: int | None = Field(None, ge=1)
    """Instances per instance group."""


class LoadModelParams(ActionParams):
    model: str = Field(min_length=1)
    """The model to reload."""
    patch: ConfigPatch = ConfigPatch()
    """What to change in the config it runs now (only the keys given)."""


class ModelParams(ActionParams):
    model: str = Field(min_length=1)
    """The model."""


class WaitReadyParams(ActionParams):
    model: str = ""
    """The model to wait for (empty: the server)."""
    within_s: Duration = Field(60.0, ge=0)
    """Fail after this many seconds."""
    interval_s: Duration = Field(1.0, gt=0)
    """Seconds between polls."""


class LoadModel:
    """Reload a model with a patched copy of the config it runs now."""

    spec = ActionSpec(
        "triton.load_model",
        side_effects=True,
        mutating=True,
        undoable=True,
        summary="reload a model with a config patch; undo reloads the snapshot",
        params=LoadModelParams,
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        triton = ctx.need_triton()
        model = param(params, "model", str)
        patch = param(params, "patch", dict, {})
        try:
            previous = await triton.model_config(model)
        except Exception as exc:
            raise classify(exc) from exc
        applied = apply_patch(previous, patch)
        try:
            await triton.load_model(model, applied)
        except Exception as exc:
            err = classify(exc)
            await _restore_after_refusal(ctx, model, previous)
            raise type(err)(f"Triton refused the config for {model}: {err}") from exc
        return {"model": model, "previous": previous, "applied": applied, "patch": patch}

    async def undo(
        self, ctx: ActionContext, params: dict[str, Any], output: dict[str, Any]
    ) -> None:
        await _load(ctx, str(output["model"]), output["previous"])


async def _restore_after_refusal(ctx: ActionContext, model: str, previous: dict[str, Any]) -> None:
    """A refused load may leave the model unloaded; put the snapshot back if so."""
    triton = ctx.need_triton()
    try:
        if await triton.model_ready(model):
            return
        await triton.load_model(model, previous)
    except Exception as exc:
        raise ActionError(
            f"config refused and restoring the previous config failed: {exc}"
        ) from exc


async def _load(ctx: ActionContext, model: str, config: dict[str, Any]) -> None:
    try:
        await ctx.need_triton().load_model(model, config)
    except Exception as exc:
        raise classify(exc) from exc


class RestoreConfig:
    """Put back the fields a fallback patch changed, as they were before it (a lease's
    restore); fields changed since by someone else are kept. Undo reloads the snapshot."""

    spec = ActionSpec(
        "triton.restore_config",
        side_effects=True,
        mutating=True,
        undoable=True,
        summary="restore the fields a patch changed from the original config; undo re-applies",
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        triton = ctx.need_triton()
        model = param(params, "model", str)
        original = param(params, "original", dict)
        patch = param(params, "patch", dict)
        try:
            previous = await triton.model_config(model)
        except Exception as exc:
            raise classify(exc) from exc
        restored = revert_patch(previous, original, patch)
        await _load(ctx, model, restored)
        return {"model": model, "previous": previous, "applied": restored}

    async def undo(
        self, ctx: ActionContext, params: dict[str, Any], output: dict[str, Any]
    ) -> None:
        await _load(ctx, str(output["model"]), output["previous"])


class UnloadModel:
    """Unload a model (serving stops); undo loads it again with its snapshot."""

    spec = ActionSpec(
        "triton.unload_model",
        side_effects=True,
        mutating=True,
        disruptive=True,
        undoable=True,
        summary="unload a model; undo reloads its snapshot",
        params=ModelParams,
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        triton = ctx.need_triton()
        model = param(params, "model", str)
        try:
            previous = await triton.model_config(model)
            await triton.unload_model(model)
        except Exception as exc:
            raise classify(exc) from exc
        return {"model": model, "previous": previous}

    async def undo(
        self, ctx: ActionContext, params: dict[str, Any], output: dict[str, Any]
    ) -> None:
        await _load(ctx, str(output["model"]), output["previous"])


class WaitReady(NoUndo):
    """Poll until the model (or the server, without a model) is ready."""

    spec = ActionSpec(
        "triton.wait_ready",
        side_effects=False,
        summary="wait until the model (or the server) is ready",
        params=WaitReadyParams,
    )

    async def run(self, ctx: ActionContext, params: dict[str, Any]) -> dict[str, Any]:
        triton = ctx.need_triton()
        model = param(params, "model", str, "")
        within = param(params, "within_s", float, 60.0)
        interval = param(params, "interval_s", float, 1.0)
        start = ctx.clock.monotonic()
        while True:
            try:
                ready = await (triton.model_ready(model) if model else triton.server_ready())
            except Exception:  # down while restarting counts as not ready
                ready = False
            waited = ctx.clock.monotonic() - start
            if ready:
                return {"ready": True, "waited_s": waited}
            if waited >= within:
                raise ActionError(f"{model or 'server'} not ready after {within:g} s")
            await ctx.clock.sleep(interval)
