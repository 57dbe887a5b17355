"""Canary inferences: a golden set sent through Triton, judged against its reference.

A golden set is an ``.npz``: the model's inputs under their tensor names, the
trusted FP32 outputs as ``reference__<OUTPUT>``, and optional integer ``labels``.
Each round sends one request per batch size and records a
:class:`~sentinel.vocabulary.samples.CanaryResult` for each. The round's plan comes
from the model's live config (its ``max_batch_size`` caps the batch sizes, so a
reduced batch size is still probed) and metadata (the golden set must still fit
the model): read afresh by every ``check()`` (playbook verification) and, for the
scheduled rounds, at least every ``PLAN_MAX_AGE_S`` and after any failed request
(so a model reloaded with another config is never blamed for the stale plan).
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import structlog

from sentinel.base.clock import Clock, SystemClock
from sentinel.base.errors import InputError
from sentinel.probes import tensors
from sentinel.probes.settings import CanarySettings
from sentinel.probes.text import text_agreement
from sentinel.probes.triton import (
    DATATYPES,
    Array,
    ModelMetadata,
    TensorSpec,
    TritonAdapter,
    TritonBadResponse,
    TritonError,
    TritonModelNotReady,
    TritonServerError,
    TritonTimeout,
    TritonUnreachable,
)
from sentinel.vocabulary.ports import SampleSink
from sentinel.vocabulary.samples import Agreement, CanaryOutcome, CanaryResult, Sample

log = structlog.get_logger(__name__)

PLAN_MAX_AGE_S = 30.0
"""Scheduled rounds reuse the model's config and metadata this long (two calls saved
of every round's four at two batch sizes)."""
FAILED_FAST = frozenset({"server_error", "model_not_ready", "bad_response"})
"""Failures answered at once: the round is redone with a fresh plan. A timeout or an
unreachable server is reported as is (redoing it would double the wait)."""
REFERENCE_PREFIX = "reference__"
LABELS = "labels"


class GoldenSetError(InputError, ValueError):
    """A golden set that cannot be used; the message names the file and the tensor."""


@dataclass(frozen=True)
class GoldenSet:
    """Golden inputs with their reference outputs (rows along the first axis)."""

    path: Path
    inputs: dict[str, Array]
    references: dict[str, Array]
    labels: Array | None = None

    @property
    def rows(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def take(self, n: int) -> tuple[dict[str, Array], dict[str, Array], Array | None]:
        """The first ``n`` rows of everything (repeating the set when it is shorter)."""
        index = np.arange(n) % self.rows
        labels = None if self.labels is None else self.labels[index]
        return (
            {k: np.ascontiguousarray(v[index]) for k, v in self.inputs.items()},
            {k: v[index] for k, v in self.references.items()},
            labels,
        )


def load_golden_set(path: str | Path) -> GoldenSet:
    """Read and check a golden ``.npz`` on its own (names, row counts, labels)."""
    file = Path(path)
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except FileNotFoundError:
        raise GoldenSetError(f"{file}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise GoldenSetError(f"{file}: not a readable .npz golden set ({exc})") from None
    labels = arrays.pop(LABELS, None)
    references = {
        k.removeprefix(REFERENCE_PREFIX): v
        for k, v in arrays.items()
        if k.startswith(REFERENCE_PREFIX)
    }
    inputs = {k: v for k, v in arrays.items() if not k.startswith(REFERENCE_PREFIX)}
    if not inputs:
        raise GoldenSetError(f"{file}: no input tensors (name them as the model's inputs)")
    if not references:
        raise GoldenSetError(f"{file}: no reference outputs (name them 'reference__<OUTPUT>')")
    rows = {k: v.shape[0] if v.ndim else 0 for k, v in arrays.items()}
    if len(set(rows.values())) != 1 or 0 in rows.values():
        detail = ", ".join(f"{k}: {n}" for k, n in sorted(rows.items()))
        raise GoldenSetError(f"{file}: tensors must share a non-zero row count ({detail})")
    n = next(iter(rows.values()))
    if labels is not None and (labels.shape != (n,) or labels.dtype.kind not in "iu"):
        raise GoldenSetError(
            f"{file}: labels: expected {n} integers, got shape {labels.shape} {labels.dtype}"
        )
    return GoldenSet(file, inputs, references, labels)


def _fits(dims: tuple[int, ...], spec: tuple[int, ...]) -> bool:
    return len(dims) == len(spec) and all(s < 0 or s == d for d, s in zip(dims, spec, strict=True))


def _check_tensor(
    golden: GoldenSet, field: str, array: Array, spec: TensorSpec, batching: bool
) -> None:
    if not tensors.fits(spec.datatype, array.dtype):  # BYTES from text, BF16 from floats
        raise GoldenSetError(
            f"{golden.path}: {field}: dtype {array.dtype} but the model's {spec.name} "
            f"is {spec.datatype}"
        )
    dims = tuple(array.shape[1:]) if batching else tuple(array.shape)
    want = spec.shape[1:] if batching else spec.shape
    if not _fits(dims, want):
        raise GoldenSetError(
            f"{golden.path}: {field}: shape {tuple(array.shape)} does not fit the model's "
            f"{spec.name} shape {list(spec.shape)}"
            + (" (first axis is the batch)" if batching else "")
        )


def check_against_model(
    golden: GoldenSet, metadata: ModelMetadata, max_batch_size: int, output: str | None = None
) -> str:
    """Check names, dtypes and shapes against the model; return the output to compare."""
    batching = max_batch_size > 0
    model_inputs = {s.name: s for s in metadata.inputs}
    missing = sorted(set(model_inputs) - set(golden.inputs))
    extra = sorted(set(golden.inputs) - set(model_inputs))
    if missing or extra:
        raise GoldenSetError(
            f"{golden.path}: inputs do not match model {metadata.name}: "
            f"missing {missing}, unknown {extra} (model takes {sorted(model_inputs)})"
        )
    for name, array in golden.inputs.items():
        _check_tensor(golden, name, array, model_inputs[name], batching)
    model_outputs = {s.name: s for s in metadata.outputs}
    chosen = output or (metadata.outputs[0].name if metadata.outputs else "")
    if chosen not in model_outputs:
        raise GoldenSetError(f"{golden.path}: model {metadata.name} has no output {chosen!r}")
    if chosen not in golden.references:
        raise GoldenSetError(f"{golden.path}: no '{REFERENCE_PREFIX}{chosen}' reference")
    reference = golden.references[chosen]
    _check_tensor(golden, REFERENCE_PREFIX + chosen, reference, model_outputs[chosen], batching)
    return chosen


def compare(output: Array, reference: Array, labels: Array | None = None) -> Agreement:
    """Agreement of an output with its reference, row by row (rows on the first axis)."""
    n = output.shape[0] if output.ndim else 1
    out = np.asarray(output, dtype=np.float64).reshape(n, -1)
    ref = np.asarray(reference, dtype=np.float64).reshape(n, -1)
    finite = bool(np.isfinite(out).all())
    if finite:
        max_abs = float(np.abs(out - ref).max())
    else:  # only then: nan_to_num is the slowest step on a canary's small arrays
        max_abs = float("inf")
        out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    out_norm = np.sqrt(np.einsum("ij,ij->i", out, out))
    ref_norm = np.sqrt(np.einsum("ij,ij->i", ref, ref))
    norms = out_norm * ref_norm
    dots = np.einsum("ij,ij->i", out, ref)
    both_zero = (out_norm == 0) & (ref_norm == 0)
    cosine = np.where(both_zero, 1.0, np.divide(dots, norms, out=np.zeros(n), where=norms > 0))
    top_out, top_ref = out.argmax(axis=1), ref.argmax(axis=1)
    accuracy = None if labels is None else float((top_out == labels).mean())
    return Agreement(
        max_abs_error=max_abs,
        cosine=float(cosine.mean()),
        top1=float((top_out == top_ref).mean()),
        accuracy=accuracy,
    )


def batch_sizes(wanted: Sequence[int], max_batch_size: int) -> list[int]:
    """Configured sizes capped at the model's current maximum (0 = no batching)."""
    if max_batch_size <= 0:
        return [0]
    return sorted({min(b, max_batch_size) for b in wanted})


_OUTCOMES: tuple[tuple[type[TritonError], CanaryOutcome], ...] = (
    (TritonTimeout, "timeout"),
    (TritonUnreachable, "unreachable"),
    (TritonModelNotReady, "model_not_ready"),
    (TritonServerError, "server_error"),
    (TritonBadResponse, "bad_response"),
)


def outcome_of(exc: TritonError) -> CanaryOutcome:
    """The canary outcome a Triton failure stands for."""
    for kind, outcome in _OUTCOMES:
        if isinstance(exc, kind):
            return outcome
    return "server_error"


@dataclass(frozen=True)
class _Plan:
    sizes: list[int]
    output: str
    datatype: str
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    """Datatype of each input: golden text is sent as BYTES, floats as BF16 where asked."""


class CanaryProbe:
    """Runs one golden set through one model on its interval (a daemon probe)."""

    def __init__(
        self,
        triton: TritonAdapter,
        settings: CanarySettings,
        *,
        clock: Clock | None = None,
        golden: GoldenSet | None = None,
        suspects: Callable[[str], bool] | None = None,
    ) -> None:
        self.triton = triton
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.golden = golden or load_golden_set(settings.golden_set)
        self.name = f"canary:{settings.model}"
        self.suspects = suspects
        """Asked after each round (once the sink has judged it): recheck this model soon?"""
        self.rechecks = 0
        """Rechecks in a row so far."""
        self._plan_cache: tuple[str, float, _Plan] | None = None
        """(version, monotonic time read, plan) of the last round planned."""

    async def run(self, sink: SampleSink, clock: Clock) -> None:
        """A round every ``interval_s`` on ``clock``, results to ``sink``, until cancelled;
        sooner after a round the detectors find suspicious (see ``recheck_interval_s``)."""
        self.clock = clock
        while True:
            samples = await self.once()
            if self.rechecks:  # this round came early, after a suspicious one
                samples = [
                    dataclasses.replace(x, recheck=True) if isinstance(x, CanaryResult) else x
                    for x in samples
                ]
            for sample in samples:
                await sink(sample)
            await clock.sleep(self.next_delay())

    def next_delay(self) -> float:
        """Seconds until the next round: a recheck while suspected, within the limit."""
        delay, self.rechecks = recheck_delay(self.settings, self.suspects, self.rechecks)
        return delay

    async def once(self) -> list[Sample]:
        """One round; a golden set that no longer fits the model is a ``bad_response``."""
        try:
            return list(await self._round(self.settings.version, reuse_plan=True))
        except GoldenSetError as exc:
            log.error("canary_golden_set_mismatch", model=self.settings.model, error=str(exc))
            ts = self.clock.now()
            return [
                self._failed(ts, b, "bad_response", str(exc)) for b in self.settings.batch_sizes
            ]

    async def check(self, model: str = "", version: str = "") -> list[CanaryResult]:
        """One round now, at every configured batch size (the ``CanaryRunner`` port).

        Raises GoldenSetError when the golden set does not fit the model's metadata.
        """
        if model and model != self.settings.model:
            raise ValueError(f"this canary watches {self.settings.model!r}, not {model!r}")
        return await self._round(version or self.settings.version, reuse_plan=False)

    async def _round(self, version: str, *, reuse_plan: bool) -> list[CanaryResult]:
        cached = self._cached_plan(version) if reuse_plan else None
        if cached is not None:
            results = [await self._one(b, cached, version) for b in cached.sizes]
            if all(r.outcome == "ok" for r in results):
                return results
            self._plan_cache = None
            if not any(r.outcome in FAILED_FAST for r in results):
                return results
            # maybe the model changed under the plan: the round an uncached probe would do
        ts = self.clock.now()
        try:
            plan = await self._plan(version)
        except TritonError as exc:
            outcome = outcome_of(exc)
            return [self._failed(ts, b, outcome, str(exc)) for b in self.settings.batch_sizes]
        self._plan_cache = (version, self.clock.monotonic(), plan)
        return [await self._one(b, plan, version) for b in plan.sizes]

    def _cached_plan(self, version: str) -> _Plan | None:
        if self._plan_cache is None:
            return None
        planned_for, at, plan = self._plan_cache
        fresh = self.clock.monotonic() - at < PLAN_MAX_AGE_S
        return plan if planned_for == version and fresh else None

    async def _plan(self, version: str) -> _Plan:
        model = self.settings.model
        config = await self.triton.model_config(model, version)
        metadata = await self.triton.model_metadata(model, version)
        try:
            max_batch = int(config.get("max_batch_size", 0))
        except (TypeError, ValueError):
            raise TritonBadResponse(f"config of {model}: max_batch_size is not a number") from None
        output = check_against_model(self.golden, metadata, max_batch, self.settings.output)
        datatype = next(s.datatype for s in metadata.outputs if s.name == output)
        sizes = batch_sizes(self.settings.batch_sizes, max_batch)
        return _Plan(sizes, output, datatype, {s.name: s.datatype for s in metadata.inputs})

    def _failed(
        self,
        ts: float,
        batch: int,
        outcome: CanaryOutcome,
        error: str,
        latency: float | None = None,
    ) -> CanaryResult:
        return CanaryResult(
            ts=ts,
            model=self.settings.model,
            version=self.settings.version,
            batch_size=batch,
            outcome=outcome,
            latency_s=latency,
            error=error,
        )

    async def _one(self, batch: int, plan: _Plan, version: str) -> CanaryResult:
        rows = batch or self.golden.rows
        inputs, references, labels = self.golden.take(rows)
        if batch == 0:  # a model without batching takes the set as one whole tensor
            inputs, references, labels = (
                self.golden.inputs,
                self.golden.references,
                self.golden.labels,
            )
        inputs = {
            k: tensors.conform(v, plan.inputs[k], k) if k in plan.inputs else v
            for k, v in inputs.items()
        }
        ts = self.clock.now()
        start = self.clock.monotonic()
        try:
            result = await self.triton.infer(
                self.settings.model, inputs, [plan.output], version, self.settings.timeout_s
            )
        except TritonError as exc:
            outcome = outcome_of(exc)
            answered = outcome in ("server_error", "bad_response")
            latency = self.clock.monotonic() - start if answered else None
            return self._failed(ts, batch, outcome, str(exc), latency)
        latency = self.clock.monotonic() - start
        served = result.model_version or version
        output = result.outputs.get(plan.output)
        reference = references[plan.output]
        problem = _output_problem(plan, output, reference)
        if problem is not None or output is None:
            failed = self._failed(ts, batch, "bad_response", problem or "no output", latency)
            return dataclasses.replace(failed, version=served)
        return CanaryResult(
            ts=ts,
            model=self.settings.model,
            version=served,
            batch_size=batch,
            outcome="ok",
            latency_s=latency,
            agreement=(
                text_agreement(output, reference)
                if plan.datatype == "BYTES"
                else compare(output, reference, labels)
            ),
        )


def _output_problem(plan: _Plan, output: Array | None, reference: Array) -> str | None:
    if output is None:
        return f"answer has no output {plan.output}"
    expected = DATATYPES.get(plan.datatype)
    if expected is not None and output.dtype != expected:
        return f"output {plan.output}: dtype {output.dtype}, model says {plan.datatype}"
    if output.shape != reference.shape:
        return f"output {plan.output}: shape {output.shape}, expected {reference.shape}"
    return None


class Rechecked(Protocol):
    """The settings a canary's round schedule reads (tensor and streaming canaries)."""

    @property
    def model(self) -> str: ...
    @property
    def interval_s(self) -> float: ...
    @property
    def recheck_interval_s(self) -> float | None: ...
    @property
    def max_rechecks(self) -> int: ...


def recheck_delay(
    settings: Rechecked, suspects: Callable[[str], bool] | None, rechecks: int
) -> tuple[float, int]:
    """Seconds until the next round and the rechecks in a row after it: sooner while a
    detector suspects the model, at most ``max_rechecks`` times in a row."""
    s = settings
    recheck = (
        s.recheck_interval_s is not None
        and suspects is not None
        and rechecks < s.max_rechecks
        and suspects(s.model)
    )
    if not recheck or s.recheck_interval_s is None:
        return s.interval_s, 0
    log.debug("canary_recheck", model=s.model, recheck=rechecks + 1)
    return min(s.recheck_interval_s, s.interval_s), rechecks + 1


class _Watched(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def version(self) -> str: ...


class ModelCanary(Protocol):
    """A canary of one model, tensor or streaming, that runs a round on demand."""

    @property
    def settings(self) -> _Watched: ...

    async def check(self, model: str = "", version: str = "") -> list[CanaryResult]: ...


class CanaryGroup:
    """Every configured canary behind one ``CanaryRunner`` (for playbook verification)."""

    def __init__(self, probes: Sequence[ModelCanary]) -> None:
        self.probes = list(probes)

    async def check(self, model: str, version: str = "") -> list[CanaryResult]:
        matching = [p for p in self.probes if p.settings.model == model]
        exact = [p for p in matching if version and p.settings.version == version]
        chosen = exact or matching
        if not chosen:
            raise ValueError(f"no canary is configured for model {model!r}")
        return await chosen[0].check(model, version)
