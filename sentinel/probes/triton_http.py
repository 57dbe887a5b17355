"""Triton over KServe v2 HTTP/REST with plain ``aiohttp`` client calls.

Inference uses the binary tensor extension (a JSON header, then raw little-endian
bytes), so large inputs do not become JSON number lists; JSON answers are read too.

Answers are read as a stream up to a bound (``max_answer_bytes``; error answers
``MAX_ERROR_BYTES``) and parsed with bounded nesting, so a huge or hostile body is a
``TritonBadResponse``, never a crash or a memory blow-up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np
from multidict import CIMultiDictProxy

from sentinel.base import strictjson
from sentinel.base.http_body import BodyTooLarge, read_within
from sentinel.probes import tensors
from sentinel.probes.triton import (
    DATATYPES,
    Array,
    InferResult,
    ModelMetadata,
    TritonAdapter,
    TritonBadResponse,
    TritonError,
    TritonModelNotReady,
    TritonServerError,
    TritonUnreachable,
    datatype_of,
    is_not_ready_message,
    parse_json_body,
    parse_json_output,
    parse_metadata,
    parse_shape,
    server_error,
)

HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_ANSWER_BYTES = 64 * 1024**2
"""The largest answer read (inference outputs included); a larger one is a bad response."""
MAX_ERROR_BYTES = 64 * 1024
"""The largest error answer read: Triton's are one short ``{"error": "..."}``."""


@dataclass(frozen=True)
class _Answer:
    """A whole answer, read within its bound."""

    status_code: int
    headers: CIMultiDictProxy[str]
    content: bytes


def _base_url(url: str) -> str:
    return url.rstrip("/") if "://" in url else f"http://{url.rstrip('/')}"


def _model_path(model: str, version: str) -> str:
    path = f"/v2/models/{model}"
    return f"{path}/versions/{version}" if version else path


class HttpTriton(TritonAdapter):
    """A Triton server's HTTP endpoint (``host:port`` or a full ``http://`` URL)."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        load_timeout_s: float = 120.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.url = _base_url(url)
        self.timeout_s = timeout_s
        self.load_timeout_s = load_timeout_s
        self.max_answer_bytes = max_answer_bytes
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        """One session (and kept-alive connections) for the adapter's life, made on first use
        inside the running loop; deadlines are set per call."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout_s: float | None = None,
        model: str | None = None,
        binary: tuple[bytes, int] | None = None,
    ) -> _Answer:
        """One request; transport failures and error answers become TritonErrors.

        ``binary`` is a binary-tensor request: the bytes and the JSON header's length.
        """
        seconds = self.timeout_s if timeout_s is None else timeout_s
        what = f"{method} {path}"
        headers: dict[str, str] | None = None
        content: bytes | None = None
        if binary is not None:
            content = binary[0]
            headers = {
                "Content-Type": "application/octet-stream",
                HEADER_LENGTH: str(binary[1]),
            }
        elif body is not None:
            content = json.dumps(body).encode()
            headers = {"Content-Type": "application/json"}
        try:
            response = await self._deadline(
                self._read(method, path, content, headers, what), seconds, what
            )
        except TritonError:  # TritonTimeout from the deadline, TritonBadResponse from the read
            raise
        except (aiohttp.ClientError, OSError) as exc:
            raise TritonUnreachable(f"{what}: {self.url}: {exc or type(exc).__name__}") from None
        if response.status_code >= 400:
            message = self._error_text(response)
            if model is not None and (response.status_code == 404 or is_not_ready_message(message)):
                raise TritonModelNotReady(f"{model}: {message}")
            raise server_error(message, status=str(response.status_code))
        return response

    async def _read(
        self,
        method: str,
        path: str,
        content: bytes | None,
        headers: dict[str, str] | None,
        what: str,
    ) -> _Answer:
        """Send and read the answer, refusing (unread) whatever is past its bound."""
        async with self._http().request(
            method, self.url + path, data=content, headers=headers, allow_redirects=False
        ) as response:
            limit = self.max_answer_bytes if response.status < 400 else MAX_ERROR_BYTES
            try:
                body = await read_within(response, limit)
            except BodyTooLarge as exc:
                raise TritonBadResponse(f"{what}: {exc}") from None
            return _Answer(response.status, response.headers, body)

    @staticmethod
    def _error_text(response: _Answer) -> str:
        """Triton's error message; an error body that is not even bounded JSON is refused."""
        what = f"HTTP {response.status_code} answer"
        try:
            body = strictjson.loads(response.content)
        except strictjson.JsonTooLarge as exc:
            raise TritonBadResponse(f"{what}: {exc}") from None
        except strictjson.JsonRefused:
            body = None  # plain text: the text is the message
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return str(body["error"])
        text = response.content.decode("utf-8", "replace")
        return f"HTTP {response.status_code}: {text[:200]}"

    async def _get_json(self, path: str, model: str | None = None) -> Any:
        response = await self._call("GET", path, model=model)
        return parse_json_body(response.content, f"GET {path}")

    # -- health -----------------------------------------------------------

    async def check_live(self) -> None:
        await self._call("GET", "/v2/health/live")

    async def check_ready(self) -> None:
        await self._call("GET", "/v2/health/ready")

    async def check_model_ready(self, model: str, version: str = "") -> None:
        try:
            await self._call("GET", f"{_model_path(model, version)}/ready", model=model)
        except TritonServerError as exc:  # 400 "Model version not ready"
            raise TritonModelNotReady(f"{model}: {exc}") from None

    # -- description and control -------------------------------------------

    async def model_metadata(self, model: str, version: str = "") -> ModelMetadata:
        return parse_metadata(await self._get_json(_model_path(model, version), model))

    async def model_config(self, model: str, version: str = "") -> dict[str, Any]:
        body = await self._get_json(f"{_model_path(model, version)}/config", model)
        if not isinstance(body, dict):
            raise TritonBadResponse(f"config of {model} is not an object")
        return body

    async def load_model(self, model: str, config: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {}
        if config is not None:
            body["parameters"] = {"config": json.dumps(config)}
        await self._call(
            "POST", f"/v2/repository/models/{model}/load", body, timeout_s=self.load_timeout_s
        )

    async def unload_model(self, model: str) -> None:
        await self._call(
            "POST", f"/v2/repository/models/{model}/unload", {}, timeout_s=self.load_timeout_s
        )

    async def statistics(self, model: str = "") -> dict[str, Any]:
        path = f"/v2/models/{model}/stats" if model else "/v2/models/stats"
        body = await self._get_json(path, model or None)
        if not isinstance(body, dict):
            raise TritonBadResponse("statistics are not an object")
        return body

    async def repository_index(self) -> list[dict[str, Any]]:
        response = await self._call("POST", "/v2/repository/index", {})
        body = parse_json_body(response.content, "POST /v2/repository/index")
        if not isinstance(body, list) or not all(isinstance(m, dict) for m in body):
            raise TritonBadResponse("repository index is not a list of objects")
        return body

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, Array],
        outputs: Sequence[str],
        version: str = "",
        timeout_s: float | None = None,
    ) -> InferResult:
        """Tensors travel as raw bytes (binary tensor extension), not JSON number lists."""
        path = f"{_model_path(model, version)}/infer"
        request = encode_binary_request(inputs, outputs)
        response = await self._call("POST", path, timeout_s=timeout_s, model=model, binary=request)
        return decode_infer_response(
            response.content, response.headers.get(HEADER_LENGTH), f"POST {path}"
        )


def encode_binary_request(inputs: Mapping[str, Array], outputs: Sequence[str]) -> tuple[bytes, int]:
    """A KServe v2 binary-tensor request: JSON header, then each input's raw bytes."""
    raw = {name: tensors.to_raw(a, datatype_of(a)) for name, a in inputs.items()}
    header = {
        "inputs": [
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": datatype_of(array),
                "parameters": {"binary_data_size": len(raw[name])},
            }
            for name, array in inputs.items()
        ],
        "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in outputs],
    }
    head = json.dumps(header).encode()
    return head + b"".join(raw.values()), len(head)


def decode_infer_response(content: bytes, header_length: str | None, what: str) -> InferResult:
    """Outputs of an inference answer, binary or JSON, each checked against its shape."""
    raw = b""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise TritonBadResponse(f"{what}: bad {HEADER_LENGTH} {header_length!r:.40}") from None
        if not 0 <= n <= len(content):
            raise TritonBadResponse(f"{what}: {HEADER_LENGTH} {n} beyond the {len(content)} bytes")
        content, raw = content[:n], content[n:]
    answer = parse_json_body(content, what)
    if not isinstance(answer, dict) or not isinstance(answer.get("outputs"), list):
        raise TritonBadResponse(f"{what}: answer has no outputs list: {answer!r:.120}")
    tensors: dict[str, Array] = {}
    offset = 0
    for item in answer["outputs"]:
        params = item.get("parameters") if isinstance(item, dict) else None
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            name, array = parse_json_output(item)
        else:
            name, array = parse_binary_output(item, size, raw[offset:])
            offset += int(size)
        tensors[name] = array
    return InferResult(model_version=str(answer.get("model_version", "")), outputs=tensors)


def parse_binary_output(item: dict[str, Any], size: Any, raw: bytes) -> tuple[str, Array]:
    """One binary output: ``size`` bytes at the start of ``raw``, as its shape says."""
    name = item.get("name")
    if not isinstance(name, str):
        raise TritonBadResponse(f"output without a name: {item!r:.80}")
    datatype = str(item.get("datatype"))
    dtype = DATATYPES.get(datatype)
    if dtype is None and datatype not in ("BYTES", "BF16"):
        raise TritonBadResponse(f"output {name}: unsupported datatype {item.get('datatype')!r}")
    shape = parse_shape(item.get("shape"), f"output {name}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0 or size > len(raw):
        raise TritonBadResponse(f"output {name}: binary_data_size {size!r:.40} does not fit")
    if dtype is None:  # BYTES (length-prefixed elements) or BF16
        try:
            return name, tensors.from_raw(raw[:size], datatype, shape, f"output {name}")
        except tensors.TensorError as exc:
            raise TritonBadResponse(str(exc)) from None
    if any(d < 0 for d in shape) or size != math.prod(shape) * dtype.itemsize:
        raise TritonBadResponse(f"output {name}: {size} bytes do not fill shape {shape}")
    array = np.frombuffer(raw[:size], dtype=dtype.newbyteorder("<")).reshape(shape)
    return name, array.astype(dtype)
