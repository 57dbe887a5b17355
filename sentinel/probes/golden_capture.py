"""Record a golden set from a model known to be good (``sentinel golden capture``).

For a tensor model the inputs go through in batches the model accepts and every
output is kept as ``reference__<OUTPUT>``; for a decoupled (streaming) model each
row is one stream, kept as its whole text (``reference__<OUTPUT>``) and its token
count (``tokens__<OUTPUT>``). Inputs are stored as given. The layout is documented in
``docs/golden-sets.md``; ``.npz`` files hold no pickles, so BYTES are stored as
unicode text and BF16 as FP32.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentinel.probes import tensors
from sentinel.probes.canary import REFERENCE_PREFIX
from sentinel.probes.tensors import Array
from sentinel.probes.triton import ModelMetadata, TritonAdapter

if TYPE_CHECKING:  # the streaming module loads gRPC: imported only to capture a stream
    from sentinel.probes.stream_canary import StreamLimits


class CaptureError(ValueError):
    """A golden set could not be captured; the message says why."""


def is_decoupled(config: Mapping[str, Any]) -> bool:
    """Whether a model config (JSON form) says the model streams (decoupled)."""
    policy = config.get("model_transaction_policy")
    return isinstance(policy, dict) and bool(policy.get("decoupled"))


def read_inputs(path: Path, metadata: ModelMetadata) -> dict[str, Array]:
    """Inputs from an ``.npz`` (arrays by name) or a ``.json`` object (name -> list of rows)."""
    if path.suffix == ".json":
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CaptureError(f"{path}: {exc}") from None
        if not isinstance(body, dict):
            raise CaptureError(f"{path}: expected an object of input name -> list of rows")
        types = {s.name: s.datatype for s in metadata.inputs}
        out = {}
        for name, rows in body.items():
            if name not in types:
                raise CaptureError(f"{path}: {name} is not an input of {metadata.name}")
            out[name] = _json_array(rows, types[name], f"{path}: {name}")
        return out
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError) as exc:
        raise CaptureError(f"{path}: not a readable .npz ({exc})") from None


def _json_array(rows: Any, datatype: str, what: str) -> Array:
    try:
        if datatype == "BYTES":
            return np.array(rows, dtype=np.str_)
        dtype = np.dtype(np.float32) if datatype == "BF16" else tensors.FIXED[datatype]
        return np.array(rows, dtype=dtype)
    except (KeyError, TypeError, ValueError) as exc:
        raise CaptureError(f"{what}: not rows of {datatype} ({exc})") from None


def storable(array: Array) -> Array:
    """An array an ``.npz`` holds without pickle: text as unicode, bfloat16 as FP32."""
    if array.dtype.kind in "SO":
        return np.array(tensors.as_text(array), dtype=np.str_).reshape(array.shape)
    if array.dtype == tensors.BF16:
        return array.astype(np.float32)
    return array


async def capture(
    triton: TritonAdapter,
    model: str,
    inputs: Mapping[str, Array],
    *,
    version: str = "",
    outputs: Sequence[str] = (),
    stream_url: str | None = None,
    limits: StreamLimits | None = None,
) -> dict[str, Array]:
    """The golden set's arrays (inputs and references), ready for ``np.savez``.

    ``limits`` bound each streamed row (default: 60 s to the first token, 30 s stall,
    600 s in all)."""
    config = await triton.model_config(model, version)
    metadata = await triton.model_metadata(model, version)
    if not inputs:
        raise CaptureError("no inputs given")
    rows = {int(a.shape[0]) if a.ndim else 0 for a in inputs.values()}
    if len(rows) != 1 or 0 in rows:
        raise CaptureError(f"inputs must share a non-zero row count, got {sorted(rows)}")
    types = {s.name: s.datatype for s in metadata.inputs}
    unknown = sorted(set(inputs) - set(types))
    if unknown:
        raise CaptureError(f"{unknown} are not inputs of {model} (it takes {sorted(types)})")
    wire = {k: tensors.conform(v, types[k], k) for k, v in inputs.items()}
    names = list(outputs) or [s.name for s in metadata.outputs]
    golden = {k: storable(np.asarray(v)) for k, v in inputs.items()}
    if is_decoupled(config):
        if stream_url is None:
            raise CaptureError(f"{model} is decoupled (streaming): give a gRPC url for it")
        golden.update(await _capture_streams(model, version, wire, names, stream_url, limits))
    else:
        max_batch = int(config.get("max_batch_size", 0) or 0)
        golden.update(await _capture_tensors(triton, model, version, wire, names, max_batch))
    return golden


async def _capture_tensors(
    triton: TritonAdapter,
    model: str,
    version: str,
    inputs: dict[str, Array],
    outputs: list[str],
    max_batch: int,
) -> dict[str, Array]:
    n = int(next(iter(inputs.values())).shape[0])
    step = max_batch if max_batch > 0 else n  # no batching: the whole set is one tensor
    parts: dict[str, list[Array]] = {name: [] for name in outputs}
    for at in range(0, n, step):
        chunk = {k: np.ascontiguousarray(v[at : at + step]) for k, v in inputs.items()}
        result = await triton.infer(model, chunk, outputs, version)
        for name in outputs:
            parts[name].append(result.outputs[name])
    return {
        REFERENCE_PREFIX + name: storable(np.concatenate(arrays)) for name, arrays in parts.items()
    }


async def _capture_streams(
    model: str,
    version: str,
    inputs: dict[str, Array],
    outputs: list[str],
    url: str,
    limits: StreamLimits | None,
) -> dict[str, Array]:
    import tritonclient.grpc.aio as grpcaio

    from sentinel.probes.stream_canary import TOKENS_PREFIX, StreamLimits, stream_once

    limits = limits or StreamLimits(first_token_s=60.0, stall_s=30.0, total_s=600.0)

    if len(outputs) != 1:
        raise CaptureError(f"a streaming golden set follows one output; name it ({outputs})")
    output = outputs[0]
    texts, counts = [], []
    client = grpcaio.InferenceServerClient(url.removeprefix("grpc://"))
    try:
        n = int(next(iter(inputs.values())).shape[0])
        for i in range(n):
            row = {k: np.ascontiguousarray(v[i]) for k, v in inputs.items()}
            streamed = await stream_once(client, model, row, output, limits, version=version)
            if not streamed.completed or streamed.error is not None:
                raise CaptureError(f"row {i}: the stream did not complete ({streamed.error})")
            texts.append(streamed.text)
            counts.append(len(streamed.tokens))
    finally:
        await client.close()
    return {
        REFERENCE_PREFIX + output: np.array(texts, dtype=np.str_),
        TOKENS_PREFIX + output: np.array(counts, dtype=np.int64),
    }
