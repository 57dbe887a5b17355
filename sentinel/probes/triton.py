"""The Triton adapter: KServe v2 health, metadata, inference and model control.

Two transports behind one interface (:class:`TritonAdapter`, which implements
``sentinel.vocabulary.ports.TritonControl``): gRPC through ``tritonclient.grpc.aio`` and HTTP
through plain KServe v2 calls with ``aiohttp``'s client (``tritonclient.http.aio`` would pull
in gevent; tensors travel as raw bytes through the binary tensor extension).
Every call has a deadline. Whatever goes wrong ends as one of the
:class:`TritonError` subclasses, so callers classify failures without knowing
the transport:

* :class:`TritonUnreachable` (a ``ConnectionError``) -- nothing answered;
* :class:`TritonTimeout` (a ``TimeoutError``) -- no answer before the deadline;
* :class:`TritonModelNotReady` -- the model is unknown, unloaded or loading;
* :class:`TritonServerError` -- Triton answered with an error (text kept verbatim);
  :class:`TritonServerBusy` when its status says "later" (HTTP 429/503);
* :class:`TritonBadResponse` -- the answer is not what the protocol says.

The first two and :class:`TritonServerBusy` are
:class:`~sentinel.base.errors.Retryable`; the rest are not.

The health probe (``TritonHealthProbe``) lives in ``sentinel.probes.triton_health``.
"""

from __future__ import annotations

import abc
import math
import warnings
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from sentinel.base import aio, strictjson
from sentinel.base.errors import ProbeError, Retryable
from sentinel.probes import tensors
from sentinel.probes.settings import TritonSettings

T = TypeVar("T")
Array = npt.NDArray[Any]
"""A numpy array of any dtype (tensors in and out)."""

DATATYPES = tensors.NUMERIC
"""KServe v2 tensor datatypes this adapter moves as numbers."""
_NOT_READY_WORDS = ("unknown model", "no available versions", "not ready", "is not found")


class TritonError(ProbeError):
    """Something went wrong talking to Triton; ``str()`` is a one-line reason."""


class TritonUnreachable(TritonError, Retryable, ConnectionError):
    """Nothing answered at the endpoint (refused, reset, DNS)."""


class TritonTimeout(TritonError, Retryable, TimeoutError):
    """No answer before the call's deadline."""


class TritonModelNotReady(TritonError):
    """The model is unknown to the server, unloaded, or not ready yet."""


class TritonServerError(TritonError):
    """Triton answered with an error; the text is Triton's, verbatim."""

    def __init__(self, message: str, status: str = "") -> None:
        super().__init__(message)
        self.status = status


class TritonServerBusy(TritonServerError, Retryable):
    """Triton answered that it cannot serve now (HTTP 429/503, gRPC UNAVAILABLE)."""


def server_error(message: str, status: str = "") -> TritonServerError:
    """The error for Triton's answer ``status``: retryable when the status says busy."""
    # HTTP codes, or a gRPC status code name ("StatusCode.UNAVAILABLE")
    busy = status in ("429", "503") or "UNAVAILABLE" in status
    return (TritonServerBusy if busy else TritonServerError)(message, status=status)


class TritonBadResponse(TritonError):
    """An answer that does not follow the KServe v2 protocol."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A model input or output as its metadata describes it (-1 = variable dim)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """``GET /v2/models/{name}``: versions and the tensors a model takes and gives."""

    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True, slots=True)
class InferResult:
    """What an inference returned."""

    model_version: str
    outputs: dict[str, Array]


def is_not_ready_message(message: str) -> bool:
    """Whether Triton's error text says the model is unknown/unloaded/not ready."""
    text = message.lower()
    return any(word in text for word in _NOT_READY_WORDS)


def parse_shape(value: Any, what: str) -> tuple[int, ...]:
    """A shape list (ints, or int strings as gRPC's JSON form writes int64)."""
    if not isinstance(value, list):
        raise TritonBadResponse(f"{what}: shape is not a list: {value!r:.80}")
    dims: list[int] = []
    for d in value:
        if isinstance(d, bool) or not isinstance(d, int | str):
            raise TritonBadResponse(f"{what}: bad dimension {d!r:.40}")
        try:
            dims.append(int(d))
        except ValueError:
            raise TritonBadResponse(f"{what}: bad dimension {d!r:.40}") from None
    return tuple(dims)


def _tensor_specs(value: Any, what: str) -> tuple[TensorSpec, ...]:
    if not isinstance(value, list):
        raise TritonBadResponse(f"metadata {what}: not a list")
    specs = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise TritonBadResponse(f"metadata {what}[{i}]: no name")
        specs.append(
            TensorSpec(
                name=item["name"],
                datatype=str(item.get("datatype", "")),
                shape=parse_shape(item.get("shape"), f"metadata {what}[{i}]"),
            )
        )
    return tuple(specs)


def parse_metadata(body: Any) -> ModelMetadata:
    """Model metadata from its KServe v2 JSON form (HTTP, or gRPC ``as_json``)."""
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise TritonBadResponse(f"model metadata is not an object with a name: {body!r:.120}")
    versions = body.get("versions") or []
    if not isinstance(versions, list):
        raise TritonBadResponse("model metadata: versions is not a list")
    return ModelMetadata(
        name=body["name"],
        versions=tuple(str(v) for v in versions),
        platform=str(body.get("platform", "")),
        inputs=_tensor_specs(body.get("inputs", []), "inputs"),
        outputs=_tensor_specs(body.get("outputs", []), "outputs"),
    )


def parse_json_output(item: Any) -> tuple[str, Array]:
    """One output tensor of a JSON inference response, checked against its own shape."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise TritonBadResponse(f"output without a name: {item!r:.80}")
    name = item["name"]
    if item.get("datatype") in ("BYTES", "BF16"):  # strings, or numbers rounded to bfloat16
        try:
            shape = parse_shape(item.get("shape"), f"output {name}")
            data = item.get("data")
            if not isinstance(data, list):
                raise TritonBadResponse(f"output {name}: data is not a list")
            return name, tensors.from_json(data, str(item["datatype"]), shape, f"output {name}")
        except tensors.TensorError as exc:
            raise TritonBadResponse(str(exc)) from None
    dtype = DATATYPES.get(str(item.get("datatype")))
    if dtype is None:
        raise TritonBadResponse(f"output {name}: unsupported datatype {item.get('datatype')!r}")
    shape = parse_shape(item.get("shape"), f"output {name}")
    data = item.get("data")
    if not isinstance(data, list):
        raise TritonBadResponse(f"output {name}: data is not a list")
    if any(d < 0 for d in shape) or len(data) != math.prod(shape):
        raise TritonBadResponse(f"output {name}: {len(data)} values do not fill shape {shape}")
    try:
        with warnings.catch_warnings():
            # numpy < 2 only warns when a value overflows the dtype; refuse it instead
            warnings.simplefilter("error", DeprecationWarning)
            array = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError, DeprecationWarning):
        raise TritonBadResponse(f"output {name}: data is not {item['datatype']}") from None
    if array.ndim != 1:
        raise TritonBadResponse(f"output {name}: data is not a flat list of numbers")
    return name, array.reshape(shape)


class TritonAdapter(abc.ABC):
    """One Triton server (implements ``sentinel.vocabulary.ports.TritonControl``)."""

    url: str
    timeout_s: float
    load_timeout_s: float

    # -- health -----------------------------------------------------------

    @abc.abstractmethod
    async def check_live(self) -> None:
        """Return when the server says it is live; raise a TritonError otherwise."""

    @abc.abstractmethod
    async def check_ready(self) -> None:
        """Return when the server says it is ready; raise a TritonError otherwise."""

    @abc.abstractmethod
    async def check_model_ready(self, model: str, version: str = "") -> None:
        """Return when the model is ready; TritonModelNotReady when it is not."""

    async def server_live(self) -> bool:
        return await self._as_bool(self.check_live())

    async def server_ready(self) -> bool:
        return await self._as_bool(self.check_ready())

    async def model_ready(self, model: str, version: str = "") -> bool:
        return await self._as_bool(self.check_model_ready(model, version))

    @staticmethod
    async def _as_bool(call: Awaitable[None]) -> bool:
        try:
            await call
        except TritonError:
            return False
        return True

    # -- model control and description -----------------------------------

    @abc.abstractmethod
    async def model_metadata(self, model: str, version: str = "") -> ModelMetadata: ...

    @abc.abstractmethod
    async def model_config(self, model: str, version: str = "") -> dict[str, Any]:
        """The config Triton is serving now, in its JSON form (snake_case fields)."""

    @abc.abstractmethod
    async def load_model(self, model: str, config: dict[str, Any] | None = None) -> None:
        """(Re)load a model, with a full config override when given (waits for the load)."""

    @abc.abstractmethod
    async def unload_model(self, model: str) -> None: ...

    @abc.abstractmethod
    async def statistics(self, model: str = "") -> dict[str, Any]:
        """``{"model_stats": [...]}`` as the statistics extension defines it."""

    @abc.abstractmethod
    async def repository_index(self) -> list[dict[str, Any]]:
        """Models in the repository: ``[{"name", "version", "state", "reason"}]``."""

    @abc.abstractmethod
    async def infer(
        self,
        model: str,
        inputs: Mapping[str, Array],
        outputs: Sequence[str],
        version: str = "",
        timeout_s: float | None = None,
    ) -> InferResult:
        """One inference; numpy arrays in and out (datatypes from the arrays' dtypes)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def _deadline(self, call: Awaitable[T], timeout_s: float | None, what: str) -> T:
        seconds = self.timeout_s if timeout_s is None else timeout_s
        try:
            return await aio.wait_for(call, seconds)
        except TimeoutError:
            raise TritonTimeout(f"{what}: no answer from {self.url} in {seconds:g} s") from None


def datatype_of(array: Array) -> str:
    """The KServe v2 datatype name of a numpy array (text is BYTES, bfloat16 is BF16)."""
    return tensors.datatype_of(array)


def connect(settings: TritonSettings) -> TritonAdapter:
    """The adapter for the configured endpoint and protocol."""
    if settings.protocol == "http":
        from sentinel.probes.triton_http import HttpTriton  # imported here: it imports this module

        return HttpTriton(settings.url, settings.timeout_s, settings.load_timeout_s)
    from sentinel.probes.triton_grpc import GrpcTriton

    return GrpcTriton(settings.url, settings.timeout_s, settings.load_timeout_s)


def parse_json_body(text: str | bytes, what: str) -> Any:
    """A JSON answer, or TritonBadResponse naming the call (also for JSON nested past
    ``strictjson.DEFAULT_MAX_DEPTH``); NaN outputs stay readable, as the canary judges them."""
    if not text:
        return None
    try:
        return strictjson.loads(text, allow_nan=True)
    except strictjson.JsonTooLarge as exc:
        raise TritonBadResponse(f"{what}: {exc}") from None
    except strictjson.JsonRefused:
        raise TritonBadResponse(f"{what}: answer is not JSON: {text!r:.120}") from None
