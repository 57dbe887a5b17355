"""Triton over KServe v2 gRPC, with ``tritonclient.grpc.aio``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from sentinel.probes import tensors as tensor_codec
from sentinel.probes.triton import (
    Array,
    InferResult,
    ModelMetadata,
    TritonAdapter,
    TritonBadResponse,
    TritonError,
    TritonModelNotReady,
    TritonServerError,
    TritonTimeout,
    TritonUnreachable,
    datatype_of,
    is_not_ready_message,
    parse_metadata,
    server_error,
)

T = TypeVar("T")


def classify_grpc(exc: InferenceServerException, what: str, model: str | None) -> TritonError:
    """The TritonError for a tritonclient gRPC exception (status code + text)."""
    status = str(exc.status() or "")
    message = str(exc.message() or exc)
    if "DEADLINE_EXCEEDED" in status:
        return TritonTimeout(f"{what}: {message}")
    if model is not None and ("NOT_FOUND" in status or is_not_ready_message(message)):
        return TritonModelNotReady(f"{model}: {message}")
    if "UNAVAILABLE" in status:
        return TritonUnreachable(f"{what}: {message}")
    return server_error(message, status=status)


class GrpcTriton(TritonAdapter):
    """A Triton server's gRPC endpoint (``host:port``).

    The channel belongs to the event loop that first used it; a call from another
    loop (tests run one loop per test) opens a fresh channel.
    """

    def __init__(self, url: str, timeout_s: float = 5.0, load_timeout_s: float = 120.0) -> None:
        self.url = url.removeprefix("grpc://")
        self.timeout_s = timeout_s
        self.load_timeout_s = load_timeout_s
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

    async def _call(
        self,
        what: str,
        call: Callable[[grpcaio.InferenceServerClient, float], Awaitable[T]],
        timeout_s: float | None = None,
        model: str | None = None,
    ) -> T:
        seconds = self.timeout_s if timeout_s is None else timeout_s
        try:
            # gRPC's own deadline first; the asyncio one is the backstop
            return await self._deadline(call(self._grpc(), seconds), seconds + 0.5, what)
        except InferenceServerException as exc:
            raise classify_grpc(exc, what, model) from None

    # -- health -----------------------------------------------------------

    async def check_live(self) -> None:
        if not await self._call("live", lambda c, t: c.is_server_live(client_timeout=t)):
            raise TritonServerError("server is not live")

    async def check_ready(self) -> None:
        if not await self._call("ready", lambda c, t: c.is_server_ready(client_timeout=t)):
            raise TritonServerError("server is not ready")

    async def check_model_ready(self, model: str, version: str = "") -> None:
        ready = await self._call(
            "model ready",
            lambda c, t: c.is_model_ready(model, version, client_timeout=t),
            model=model,
        )
        if not ready:
            raise TritonModelNotReady(f"{model}: model is not ready")

    # -- description and control -------------------------------------------

    async def model_metadata(self, model: str, version: str = "") -> ModelMetadata:
        body = await self._call(
            "metadata",
            lambda c, t: c.get_model_metadata(model, version, as_json=True, client_timeout=t),
            model=model,
        )
        return parse_metadata(body)

    async def model_config(self, model: str, version: str = "") -> dict[str, Any]:
        body = await self._call(
            "config",
            lambda c, t: c.get_model_config(model, version, as_json=True, client_timeout=t),
            model=model,
        )
        config = body.get("config") if isinstance(body, dict) else None
        if not isinstance(config, dict):
            raise TritonBadResponse(f"config of {model} is not an object")
        return config

    async def load_model(self, model: str, config: dict[str, Any] | None = None) -> None:
        text = None if config is None else json.dumps(config)
        await self._call(
            f"load {model}",
            lambda c, t: c.load_model(model, config=text, client_timeout=t),
            timeout_s=self.load_timeout_s,
        )

    async def unload_model(self, model: str) -> None:
        await self._call(
            f"unload {model}",
            lambda c, t: c.unload_model(model, client_timeout=t),
            timeout_s=self.load_timeout_s,
        )

    async def statistics(self, model: str = "") -> dict[str, Any]:
        body = await self._call(
            "statistics",
            lambda c, t: c.get_inference_statistics(model, as_json=True, client_timeout=t),
            model=model or None,
        )
        if not isinstance(body, dict):
            raise TritonBadResponse("statistics are not an object")
        return body

    async def repository_index(self) -> list[dict[str, Any]]:
        body = await self._call(
            "repository index",
            lambda c, t: c.get_model_repository_index(as_json=True, client_timeout=t),
        )
        models = body.get("models", []) if isinstance(body, dict) else None
        if not isinstance(models, list):
            raise TritonBadResponse("repository index is not a list")
        return models

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, Array],
        outputs: Sequence[str],
        version: str = "",
        timeout_s: float | None = None,
    ) -> InferResult:
        tensors = []
        for name, array in inputs.items():
            datatype = datatype_of(array)
            if datatype == "BYTES":  # text arrays travel as UTF-8 bytes
                array = tensor_codec.as_bytes_array(array)
            tensor = grpcclient.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        wanted = [grpcclient.InferRequestedOutput(name) for name in outputs]
        result = await self._call(
            f"infer {model}",
            lambda c, t: c.infer(model, tensors, version, outputs=wanted, client_timeout=t),
            timeout_s=timeout_s,
            model=model,
        )
        arrays: dict[str, Array] = {}
        for name in outputs:
            try:
                array = result.as_numpy(name)
            except (ValueError, TypeError, InferenceServerException) as exc:
                raise TritonBadResponse(f"output {name}: {exc}") from None
            if array is None:
                raise TritonBadResponse(f"answer has no output {name}")
            arrays[name] = np.asarray(array)
        response = result.get_response()
        return InferResult(model_version=str(response.model_version), outputs=arrays)
