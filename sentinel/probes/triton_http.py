"""Triton over KServe v2 HTTP/REST, with plain ``httpx`` calls (JSON tensors)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from sentinel.probes.triton import (
    Array,
    InferResult,
    ModelMetadata,
    TritonAdapter,
    TritonBadResponse,
    TritonModelNotReady,
    TritonServerError,
    TritonTimeout,
    TritonUnreachable,
    datatype_of,
    is_not_ready_message,
    parse_json_body,
    parse_json_output,
    parse_metadata,
)


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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = _base_url(url)
        self.timeout_s = timeout_s
        self.load_timeout_s = load_timeout_s
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.url, transport=self._transport, timeout=self.timeout_s
            )
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout_s: float | None = None,
        model: str | None = None,
    ) -> httpx.Response:
        """One request; transport failures and error answers become TritonErrors."""
        seconds = self.timeout_s if timeout_s is None else timeout_s
        what = f"{method} {path}"
        content = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = await self._deadline(
                self._http().request(
                    method, path, content=content, headers=headers, timeout=seconds
                ),
                seconds,
                what,
            )
        except httpx.TimeoutException:
            raise TritonTimeout(f"{what}: no answer from {self.url} in {seconds:g} s") from None
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise TritonUnreachable(f"{what}: {self.url}: {exc or type(exc).__name__}") from None
        if response.status_code >= 400:
            message = self._error_text(response)
            if model is not None and (response.status_code == 404 or is_not_ready_message(message)):
                raise TritonModelNotReady(f"{model}: {message}")
            raise TritonServerError(message, status=str(response.status_code))
        return response

    @staticmethod
    def _error_text(response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return str(body["error"])
        return f"HTTP {response.status_code}: {response.text[:200]}"

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
        body = {
            "inputs": [
                {
                    "name": name,
                    "shape": list(array.shape),
                    "datatype": datatype_of(array),
                    "data": array.ravel().tolist(),
                }
                for name, array in inputs.items()
            ],
            "outputs": [{"name": name} for name in outputs],
        }
        path = f"{_model_path(model, version)}/infer"
        response = await self._call("POST", path, body, timeout_s=timeout_s, model=model)
        answer = parse_json_body(response.content, f"POST {path}")
        if not isinstance(answer, dict) or not isinstance(answer.get("outputs"), list):
            raise TritonBadResponse(f"inference answer has no outputs list: {answer!r:.120}")
        tensors = dict(parse_json_output(item) for item in answer["outputs"])
        return InferResult(model_version=str(answer.get("model_version", "")), outputs=tensors)
