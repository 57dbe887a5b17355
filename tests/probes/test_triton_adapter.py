"""The Triton adapter against a real tritonserver (gRPC and HTTP) and a garbage server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiohttp import web
from triton_fixtures import GOLDEN_DIGITS, ModelHandle

from sentinel.probes.triton import (
    TritonAdapter,
    TritonBadResponse,
    TritonModelNotReady,
    TritonServerError,
    TritonTimeout,
    TritonUnreachable,
)
from sentinel.probes.triton_grpc import GrpcTriton
from sentinel.probes.triton_http import HttpTriton
from sentinel.testing.triton_local import free_port


def _rows(n: int) -> np.ndarray:
    return np.load(GOLDEN_DIGITS)["INPUT"][:n]


@pytest.mark.triton
async def test_health_and_metadata(triton_adapter: TritonAdapter) -> None:
    """Live, ready, model ready and the model's tensors come back as Triton serves them."""
    assert (
        await triton_adapter.server_live(),
        await triton_adapter.server_ready(),
        await triton_adapter.model_ready("digits"),
    ) == (True, True, True)
    metadata = await triton_adapter.model_metadata("digits")
    assert (metadata.name, metadata.versions) == ("digits", ("1",))
    assert [(s.name, s.datatype, s.shape) for s in metadata.inputs] == [("INPUT", "FP32", (-1, 64))]
    assert [(s.name, s.datatype, s.shape) for s in metadata.outputs] == [
        ("LOGITS", "FP32", (-1, 10))
    ]


@pytest.mark.triton
async def test_infer_returns_the_reference_logits(triton_adapter: TritonAdapter) -> None:
    """An FP32 inference returns the golden reference and the serving version."""
    golden = np.load(GOLDEN_DIGITS)
    result = await triton_adapter.infer("digits", {"INPUT": golden["INPUT"][:5]}, ["LOGITS"])
    assert result.model_version == "1"
    np.testing.assert_array_equal(golden["reference__LOGITS"][:5], result.outputs["LOGITS"])


@pytest.mark.triton
async def test_load_with_config_override_takes_effect(
    triton_adapter: TritonAdapter, digits: ModelHandle
) -> None:
    """load_model with an edited served config changes max_batch_size and the knobs."""
    config = await triton_adapter.model_config("digits")
    config["max_batch_size"] = 4
    # Triton filled preferred_batch_size with the old maximum; it must not exceed the new one
    config["dynamic_batching"]["preferred_batch_size"] = [4]
    config["parameters"]["precision"] = {"string_value": "fp16"}
    await triton_adapter.load_model("digits", config)
    served = await triton_adapter.model_config("digits")
    assert (
        served["max_batch_size"],
        served["parameters"]["precision"]["string_value"],
    ) == (4, "fp16")
    with pytest.raises(TritonServerError, match="batch-size must be <= 4"):
        await triton_adapter.infer("digits", {"INPUT": _rows(8)}, ["LOGITS"])


@pytest.mark.triton
async def test_unloaded_model_is_not_ready(
    triton_adapter: TritonAdapter, digits: ModelHandle
) -> None:
    """After unload, model_ready is False and inference raises TritonModelNotReady."""
    await triton_adapter.unload_model("digits")
    digits.unload()  # waits until the unload has finished
    assert await triton_adapter.model_ready("digits") is False
    with pytest.raises(TritonModelNotReady, match="digits"):
        await triton_adapter.infer("digits", {"INPUT": _rows(1)}, ["LOGITS"])
    with pytest.raises(TritonModelNotReady):
        await triton_adapter.model_config("digits")
    await triton_adapter.load_model("digits")
    assert await triton_adapter.model_ready("digits") is True


@pytest.mark.triton
async def test_statistics_and_index(triton_adapter: TritonAdapter) -> None:
    """Statistics name the model; the repository index says it is READY."""
    await triton_adapter.infer("digits", {"INPUT": _rows(2)}, ["LOGITS"])
    # Triton counts an inference after it has sent the answer (a zero count is left out
    # of gRPC's JSON): give a busy host a moment before reading the count
    for _ in range(50):
        stats = await triton_adapter.statistics("digits")
        if int(stats["model_stats"][0].get("inference_count", 0)) >= 2:
            break
        await asyncio.sleep(0.1)
    assert [m["name"] for m in stats["model_stats"]] == ["digits"]
    assert int(stats["model_stats"][0].get("inference_count", 0)) >= 2
    index = await triton_adapter.repository_index()
    assert [(m["name"], m["state"]) for m in index] == [("digits", "READY")]


@pytest.mark.triton
async def test_loading_an_unknown_model_is_a_server_error(triton_adapter: TritonAdapter) -> None:
    """Triton's refusal to load a model it cannot find surfaces with its text."""
    with pytest.raises(TritonServerError, match="failed to load 'no_such_model'"):
        await triton_adapter.load_model("no_such_model")


@pytest.mark.triton
async def test_model_errors_keep_tritons_text(
    triton_adapter: TritonAdapter, digits: ModelHandle
) -> None:
    """A model failing every request gives TritonServerError with its message verbatim."""
    digits.reconfigure(error_rate=1, error_message="CUDA error: an illegal memory access")
    with pytest.raises(TritonServerError) as caught:
        await triton_adapter.infer("digits", {"INPUT": _rows(1)}, ["LOGITS"])
    assert str(caught.value) == "CUDA error: an illegal memory access"


@pytest.mark.triton
async def test_hanging_model_times_out(triton_adapter: TritonAdapter, digits: ModelHandle) -> None:
    """A request stuck in the model raises TritonTimeout at the call's deadline."""
    digits.reconfigure(hang_s=1.0)
    with pytest.raises(TritonTimeout):
        await triton_adapter.infer("digits", {"INPUT": _rows(1)}, ["LOGITS"], timeout_s=0.2)


@pytest.mark.parametrize("adapter_type", [GrpcTriton, HttpTriton])
async def test_nothing_listening_is_unreachable(adapter_type: type[TritonAdapter]) -> None:
    """A closed port gives False for health and TritonUnreachable for calls."""
    adapter = adapter_type(f"127.0.0.1:{free_port()}", 2.0)  # type: ignore[call-arg]
    try:
        assert await adapter.server_live() is False
        with pytest.raises(TritonUnreachable):
            await adapter.infer("digits", {"INPUT": _rows(1)}, ["LOGITS"])
    finally:
        await adapter.close()


# -- a loopback HTTP server that answers with garbage ------------------------

GARBAGE = {
    "not json": (200, "<html>oops</html>"),
    "no outputs": (200, json.dumps({"model_name": "digits"})),
    "short data": (
        200,
        json.dumps(
            {"outputs": [{"name": "LOGITS", "datatype": "FP32", "shape": [1, 10], "data": [1]}]}
        ),
    ),
    "strings as data": (
        200,
        json.dumps(
            {
                "outputs": [
                    {"name": "LOGITS", "datatype": "FP32", "shape": [1, 2], "data": ["a", "b"]}
                ]
            }
        ),
    ),
    "unknown datatype": (
        200,
        json.dumps(
            {"outputs": [{"name": "LOGITS", "datatype": "FP99", "shape": [1], "data": [1]}]}
        ),
    ),
    "nested data": (
        200,
        json.dumps(
            {"outputs": [{"name": "LOGITS", "datatype": "FP32", "shape": [2], "data": [[1], [2]]}]}
        ),
    ),
    "bad shape": (
        200,
        json.dumps({"outputs": [{"name": "LOGITS", "datatype": "FP32", "shape": "x", "data": []}]}),
    ),
}


@pytest.fixture
async def garbage_server() -> AsyncIterator[tuple[str, dict[str, tuple[int, str]]]]:
    """A real HTTP server on loopback whose infer answer each test chooses."""
    answer: dict[str, tuple[int, str]] = {"infer": (200, "{}"), "metadata": (200, "[]")}

    async def infer(_: web.Request) -> web.Response:
        status, body = answer["infer"]
        return web.Response(status=status, text=body, content_type="application/json")

    async def metadata(_: web.Request) -> web.Response:
        status, body = answer["metadata"]
        return web.Response(status=status, text=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v2/models/digits/infer", infer)
    app.router.add_get("/v2/models/digits", metadata)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"127.0.0.1:{port}", answer
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("case", sorted(GARBAGE))
async def test_garbage_inference_answers_are_bad_responses(
    garbage_server: tuple[str, dict[str, tuple[int, str]]], case: str
) -> None:
    """Each malformed infer answer raises TritonBadResponse, never another exception."""
    url, answer = garbage_server
    answer["infer"] = GARBAGE[case]
    adapter = HttpTriton(url, 2.0)
    try:
        with pytest.raises(TritonBadResponse):
            await adapter.infer("digits", {"INPUT": _rows(1)}, ["LOGITS"])
    finally:
        await adapter.close()


@pytest.mark.parametrize(
    "body", ["[]", "{}", '{"name": "digits", "inputs": [{"shape": [1]}]}', '{"name": 3}']
)
async def test_garbage_metadata_is_a_bad_response(
    garbage_server: tuple[str, dict[str, tuple[int, str]]], body: str
) -> None:
    """Metadata that is not KServe v2 raises TritonBadResponse."""
    url, answer = garbage_server
    answer["metadata"] = (200, body)
    adapter = HttpTriton(url, 2.0)
    try:
        with pytest.raises(TritonBadResponse):
            await adapter.model_metadata("digits")
    finally:
        await adapter.close()


async def test_error_answer_without_json_keeps_status(
    garbage_server: tuple[str, dict[str, tuple[int, str]]],
) -> None:
    """A 500 with a non-JSON body is a TritonServerError carrying the status and text."""
    url, answer = garbage_server
    answer["infer"] = (500, "upstream exploded")
    adapter = HttpTriton(url, 2.0)
    try:
        with pytest.raises(TritonServerError, match="HTTP 500: upstream exploded") as caught:
            await adapter.infer("digits", {"INPUT": _rows(1)}, ["LOGITS"])
        assert caught.value.status == "500"
    finally:
        await adapter.close()


@pytest.mark.parametrize("adapter_type", [GrpcTriton, HttpTriton])
async def test_malformed_url_is_unreachable(adapter_type: type[TritonAdapter]) -> None:
    """A URL that cannot be parsed is TritonUnreachable naming it, not a crash."""
    adapter = adapter_type("triton:port", 1.0)  # type: ignore[call-arg]
    try:
        with pytest.raises(TritonUnreachable, match="port"):
            await adapter.model_config("digits")
    finally:
        await adapter.close()
