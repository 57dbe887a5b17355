"""Streaming canaries: golden prompts through a decoupled (generative) model over gRPC.

A decoupled model answers one request with many responses (one per token) on a gRPC
bidirectional stream (``tritonclient.grpc.aio``'s ``stream_infer``). Each prompt
becomes one :class:`~sentinel.vocabulary.samples.StreamResult`: time to first token,
inter-token latency, decode rate, whether the stream completed or stalled, and how the
generated text compares with the golden text (exact match of text and token count, and
the normalised edit distance; greedy decoding makes these deterministic).

The golden set is an ``.npz`` (``sentinel golden capture`` writes it): one prompt per
row of the input tensors, ``reference__<OUTPUT>`` the whole generated text per row, and
``tokens__<OUTPUT>`` how many tokens it came in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import numpy as np
import structlog
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from sentinel.base import aio
from sentinel.base.clock import Clock, SystemClock
from sentinel.probes import tensors
from sentinel.probes.canary import (
    REFERENCE_PREFIX,
    GoldenSetError,
    load_golden_set,
    outcome_of,
    recheck_delay,
)
from sentinel.probes.settings import StreamCanarySettings, TritonSettings
from sentinel.probes.tensors import Array
from sentinel.probes.text import normalised_edit_distance
from sentinel.probes.triton import (
    ModelMetadata,
    TritonAdapter,
    TritonError,
    TritonServerError,
    TritonTimeout,
    TritonUnreachable,
)
from sentinel.probes.triton_grpc import classify_grpc
from sentinel.vocabulary.ports import SampleSink
from sentinel.vocabulary.samples import Agreement, CanaryResult, Sample, StreamResult

log = structlog.get_logger(__name__)
TOKENS_PREFIX = "tokens__"


@dataclass(frozen=True)
class StreamGoldenSet:
    """Golden prompts (one per row) with the text each should generate."""

    path: Path
    inputs: dict[str, Array]
    texts: dict[str, list[str]]
    """Per output: the whole generated text of each row."""
    token_counts: dict[str, list[int]]
    """Per output: how many tokens each row's text came in (may be empty: not checked)."""

    @property
    def rows(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def row(self, i: int) -> dict[str, Array]:
        """Row ``i``'s input tensors (the row axis dropped)."""
        return {k: np.ascontiguousarray(v[i % self.rows]) for k, v in self.inputs.items()}


def load_stream_golden_set(path: str | Path) -> StreamGoldenSet:
    """Read a streaming golden ``.npz`` (see the module docstring)."""
    golden = load_golden_set(path)
    counts = {
        k.removeprefix(TOKENS_PREFIX): [int(x) for x in v]
        for k, v in golden.inputs.items()
        if k.startswith(TOKENS_PREFIX)
    }
    inputs = {k: v for k, v in golden.inputs.items() if not k.startswith(TOKENS_PREFIX)}
    if not inputs:
        raise GoldenSetError(f"{golden.path}: no input tensors")
    for name, ref in golden.references.items():
        if ref.ndim != 1 or ref.dtype.kind not in "SUO":
            raise GoldenSetError(
                f"{golden.path}: {REFERENCE_PREFIX}{name}: expected one text per prompt, "
                f"got shape {ref.shape} {ref.dtype}"
            )
    texts = {k: tensors.as_text(v) for k, v in golden.references.items()}
    return StreamGoldenSet(golden.path, inputs, texts, counts)


def check_stream_golden(
    golden: StreamGoldenSet, metadata: ModelMetadata, output: str | None
) -> str:
    """Check input names, datatypes and per-row shapes; return the output to compare."""
    specs = {s.name: s for s in metadata.inputs}
    required = {s.name for s in metadata.inputs}
    unknown = sorted(set(golden.inputs) - set(specs))
    if unknown:
        raise GoldenSetError(
            f"{golden.path}: inputs {unknown} are not inputs of model {metadata.name} "
            f"(it takes {sorted(required)})"
        )
    for name, array in golden.inputs.items():
        spec = specs[name]
        dims = tuple(array.shape[1:])
        shape_ok = len(dims) == len(spec.shape) and all(
            s < 0 or s == d for d, s in zip(dims, spec.shape, strict=True)
        )
        if not tensors.fits(spec.datatype, array.dtype) or not shape_ok:
            raise GoldenSetError(
                f"{golden.path}: {name}: rows of {array.dtype} {tuple(array.shape[1:])} do not "
                f"fit the model's {spec.datatype} {list(spec.shape)}"
            )
    chosen = output or (metadata.outputs[0].name if metadata.outputs else "")
    if chosen not in {s.name for s in metadata.outputs}:
        raise GoldenSetError(f"{golden.path}: model {metadata.name} has no output {chosen!r}")
    if chosen not in golden.texts:
        raise GoldenSetError(f"{golden.path}: no '{REFERENCE_PREFIX}{chosen}' reference")
    return chosen


@dataclass(frozen=True)
class Streamed:
    """What one stream brought: tokens with their arrival times, and how it ended."""

    tokens: list[str]
    times: list[float]
    """Seconds after the request was sent at which each token arrived."""
    duration_s: float
    completed: bool
    stalled: bool = False
    error: TritonError | None = None
    model_version: str = ""

    @property
    def text(self) -> str:
        return "".join(self.tokens)


@dataclass(frozen=True)
class StreamLimits:
    first_token_s: float
    stall_s: float
    total_s: float


def _grpc_error(exc: grpc.RpcError, what: str) -> TritonError:
    code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
    detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TritonTimeout(f"{what}: {detail}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return TritonUnreachable(f"{what}: {detail}")
    return TritonServerError(f"{what}: {detail}", status=str(code or ""))


async def stream_once(
    client: grpcaio.InferenceServerClient,
    model: str,
    inputs: dict[str, Array],
    output: str,
    limits: StreamLimits,
    *,
    version: str = "",
    clock: Clock | None = None,
) -> Streamed:
    """One request on a bidirectional stream; every token timed on ``clock``'s monotonic."""
    clock = clock or SystemClock()
    tensors_in = []
    for name, array in inputs.items():
        datatype = tensors.datatype_of(array)
        wire = tensors.as_bytes_array(array) if datatype == "BYTES" else array
        tensor = grpcclient.InferInput(name, list(wire.shape), datatype)
        tensor.set_data_from_numpy(wire)
        tensors_in.append(tensor)
    wanted = [grpcclient.InferRequestedOutput(output)]

    async def requests() -> AsyncIterator[dict[str, Any]]:
        yield {
            "model_name": model,
            "model_version": version,
            "inputs": tensors_in,
            "outputs": wanted,
        }

    what = f"stream {model}"
    tokens: list[str] = []
    times: list[float] = []
    served = ""
    start = clock.monotonic()

    def ended(completed: bool, stalled: bool = False, error: TritonError | None = None) -> Streamed:
        elapsed = clock.monotonic() - start
        return Streamed(tokens, times, elapsed, completed, stalled, error, served)

    stream = client.stream_infer(requests(), stream_timeout=limits.total_s + 1.0)
    while True:
        elapsed = clock.monotonic() - start
        wait = limits.stall_s if tokens else limits.first_token_s
        left = limits.total_s - elapsed
        try:
            result, error = await aio.wait_for(anext(stream), min(wait, max(left, 0.0)))
        except StopAsyncIteration:
            return ended(completed=True)
        except TimeoutError:
            stream.cancel()
            if left <= wait:
                return ended(
                    False, error=TritonTimeout(f"{what}: not done in {limits.total_s:g} s")
                )
            if not tokens:
                reason = f"{what}: no first token in {limits.first_token_s:g} s"
                return ended(False, error=TritonTimeout(reason))
            reason = f"{what}: no token for {limits.stall_s:g} s after {len(tokens)}"
            return ended(False, stalled=True, error=TritonTimeout(reason))
        except grpc.RpcError as exc:
            return ended(False, error=_grpc_error(exc, what))
        except InferenceServerException as exc:
            return ended(False, error=classify_grpc(exc, what, model))
        if error is not None:
            stream.cancel()
            return ended(False, error=classify_grpc(error, what, model))
        served = str(result.get_response().model_version) or served
        array = result.as_numpy(output)
        if array is None:  # an empty (final-only) response carries no token
            continue
        times.append(clock.monotonic() - start)
        tokens.append("".join(tensors.as_text(array)))


def stream_result(
    streamed: Streamed,
    *,
    ts: float,
    model: str,
    version: str,
    prompt: int,
    reference: str | None,
    reference_tokens: int | None,
) -> StreamResult:
    """The sample of one stream: its timings, and its text against the reference."""
    t = streamed.times
    gaps = [b - a for a, b in itertools.pairwise(t)]
    error = streamed.error
    outcome = outcome_of(error) if error is not None else "ok"
    if streamed.stalled:
        outcome = "timeout"
    exact = distance = None
    if streamed.completed and error is None and reference is not None:
        same_count = reference_tokens is None or reference_tokens == len(streamed.tokens)
        exact = streamed.text == reference and same_count
        distance = normalised_edit_distance(streamed.text, reference)
    return StreamResult(
        ts=ts,
        model=model,
        version=streamed.model_version or version,
        prompt=prompt,
        outcome=outcome,
        ttft_s=t[0] if t else None,
        tokens=len(streamed.tokens),
        duration_s=streamed.duration_s,
        itl_s=sum(gaps) / len(gaps) if gaps else None,
        max_gap_s=max([t[0], *gaps]) if t else None,
        tokens_per_s=len(gaps) / (t[-1] - t[0]) if gaps and t[-1] > t[0] else None,
        completed=streamed.completed and error is None,
        stalled=streamed.stalled,
        exact_match=exact,
        edit_distance=distance,
        error=str(error) if error is not None else None,
    )


class StreamCanaryProbe:
    """Streams golden prompts through one decoupled model on its interval (a daemon probe)."""

    def __init__(
        self,
        triton: TritonAdapter,
        settings: StreamCanarySettings,
        *,
        url: str,
        clock: Clock | None = None,
        golden: StreamGoldenSet | None = None,
        suspects: Callable[[str], bool] | None = None,
    ) -> None:
        self.triton = triton
        self.settings = settings
        self.url = url.removeprefix("grpc://")
        self.clock: Clock = clock or SystemClock()
        self.golden = golden or load_stream_golden_set(settings.golden_set)
        self.name = f"stream:{settings.model}"
        self.suspects = suspects
        self.rechecks = 0
        self._next_prompt = 0
        self._client: grpcaio.InferenceServerClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _grpc(self) -> grpcaio.InferenceServerClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = grpcaio.InferenceServerClient(self.url)
            self._loop = loop
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.close()

    async def run(self, sink: SampleSink, clock: Clock) -> None:
        """A round every ``interval_s`` (sooner after a suspicious one), until cancelled."""
        self.clock = clock
        try:
            while True:
                recheck = self.rechecks > 0
                for sample in await self.once():
                    if recheck and isinstance(sample, StreamResult):
                        sample = dataclasses.replace(sample, recheck=True)
                    await sink(sample)
                await clock.sleep(self.next_delay())
        finally:
            await self.close()

    def next_delay(self) -> float:
        delay, self.rechecks = recheck_delay(self.settings, self.suspects, self.rechecks)
        return delay

    async def once(self) -> list[Sample]:
        """One round: the next ``prompts_per_round`` prompts, one stream each."""
        return list(await self.check())

    async def check(self, model: str = "", version: str = "") -> list[StreamResult]:
        """One round now; a golden set that no longer fits the model is a ``bad_response``."""
        s = self.settings
        if model and model != s.model:
            raise ValueError(f"this canary watches {s.model!r}, not {model!r}")
        version = version or s.version
        prompts = [(self._next_prompt + i) % self.golden.rows for i in range(s.prompts_per_round)]
        self._next_prompt = (prompts[-1] + 1) % self.golden.rows
        try:
            metadata = await self.triton.model_metadata(s.model, version)
            output = check_stream_golden(self.golden, metadata, s.output)
        except (TritonError, GoldenSetError) as exc:
            if isinstance(exc, GoldenSetError):
                log.error("stream_canary_golden_set_mismatch", model=s.model, error=str(exc))
            outcome = outcome_of(exc) if isinstance(exc, TritonError) else "bad_response"
            ts = self.clock.now()
            return [StreamResult(ts, s.model, version, p, outcome, error=str(exc)) for p in prompts]
        types = {spec.name: spec.datatype for spec in metadata.inputs}
        return [await self._one(p, output, types, version) for p in prompts]

    async def _one(
        self, prompt: int, output: str, types: dict[str, str], version: str
    ) -> StreamResult:
        s = self.settings
        inputs = {k: tensors.conform(v, types[k], k) for k, v in self.golden.row(prompt).items()}
        limits = StreamLimits(s.first_token_timeout_s, s.stall_timeout_s, s.timeout_s)
        ts = self.clock.now()
        streamed = await stream_once(
            self._grpc(), s.model, inputs, output, limits, version=version, clock=self.clock
        )
        counts = self.golden.token_counts.get(output)
        result = stream_result(
            streamed,
            ts=ts,
            model=s.model,
            version=version,
            prompt=prompt,
            reference=self.golden.texts[output][prompt],
            reference_tokens=counts[prompt] if counts else None,
        )
        log.debug(
            "stream_canary",
            model=s.model,
            prompt=prompt,
            outcome=result.outcome,
            ttft_s=result.ttft_s,
            tokens=result.tokens,
            edit_distance=result.edit_distance,
        )
        return result


def build_stream_canaries(
    configured: list[StreamCanarySettings],
    triton: TritonAdapter,
    triton_settings: TritonSettings,
    clock: Clock,
) -> list[StreamCanaryProbe]:
    """The configured streaming canaries; ValueError names the one that cannot run."""
    probes = []
    for c in configured:
        url = c.url or (triton_settings.url if triton_settings.protocol == "grpc" else None)
        if url is None:
            raise ValueError(
                f"stream_canaries[{c.model}].url: streams need gRPC; set it (triton is http)"
            )
        try:
            probes.append(StreamCanaryProbe(triton, c, url=url, clock=clock))
        except (GoldenSetError, OSError) as exc:
            raise ValueError(f"stream_canaries[{c.model}].golden_set: {exc}") from exc
    return probes


def as_canary_result(result: StreamResult) -> CanaryResult:
    """A stream as a canary round for playbook verification: ``ok`` only when it completed;
    latency is the time to first token; agreement is exact match (``top1``) and one minus
    the edit distance (``cosine``)."""
    agreement = None
    if result.completed and result.edit_distance is not None:
        agreement = Agreement(
            max_abs_error=result.edit_distance,
            cosine=1.0 - result.edit_distance,
            top1=1.0 if result.exact_match else 0.0,
        )
    outcome = result.outcome if result.outcome != "ok" or result.completed else "bad_response"
    return CanaryResult(
        ts=result.ts,
        model=result.model,
        version=result.version,
        batch_size=0,
        outcome=outcome,
        latency_s=result.ttft_s,
        error=result.error,
        agreement=agreement,
        recheck=result.recheck,
    )


class StreamVerification:
    """A streaming canary behind the ``CanaryRunner`` port: a playbook's verification
    streams the golden prompts (a round of ``prompts_per_round``) and judges them."""

    def __init__(self, probe: StreamCanaryProbe) -> None:
        self.probe = probe
        self.settings = probe.settings

    async def check(self, model: str = "", version: str = "") -> list[CanaryResult]:
        return [as_canary_result(r) for r in await self.probe.check(model, version)]
