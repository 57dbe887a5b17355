"""Whatever a server sends, the response parsers raise only TritonBadResponse."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.probes.triton import TritonBadResponse, parse_json_output, parse_metadata
from sentinel.probes.triton_http import decode_infer_response

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=30,
)
# outputs that look almost right, so the parser gets past its first checks
near_outputs = st.fixed_dictionaries(
    {
        "name": st.one_of(st.just("LOGITS"), json_values),
        "datatype": st.sampled_from(["FP32", "FP16", "INT8", "BOOL", "UINT64", "BYTES", "X"]),
        "shape": st.one_of(st.lists(st.integers(-2, 4), max_size=3), json_values),
        "data": st.one_of(st.lists(json_values, max_size=12), json_values),
    }
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values, near_outputs))
def test_output_parser_only_raises_bad_response(item: Any) -> None:
    """parse_json_output returns an array matching its shape or raises TritonBadResponse."""
    try:
        name, array = parse_json_output(item)
    except TritonBadResponse:
        return
    assert tuple(int(d) for d in item["shape"]) == array.shape
    assert name == item["name"]


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"name": st.text(max_size=4), "inputs": json_values, "outputs": json_values}
        ),
    )
)
def test_metadata_parser_only_raises_bad_response(body: Any) -> None:
    """parse_metadata returns metadata or raises TritonBadResponse, nothing else."""
    try:
        metadata = parse_metadata(body)
    except TritonBadResponse:
        return
    assert metadata.name == body["name"]


def _binary_answer(size: object, shape: list[int], payload: bytes) -> tuple[bytes, str]:
    head = json.dumps(
        {
            "outputs": [
                {
                    "name": "LOGITS",
                    "datatype": "FP32",
                    "shape": shape,
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    ).encode()
    return head + payload, str(len(head))


def test_binary_answer_round_trips() -> None:
    """A well-formed binary answer decodes to the very floats that were sent."""
    values = np.arange(20, dtype=np.float32).reshape(2, 10)
    content, length = _binary_answer(80, [2, 10], values.tobytes())
    result = decode_infer_response(content, length, "test")
    np.testing.assert_array_equal(values, result.outputs["LOGITS"])


@pytest.mark.parametrize(
    ("content", "length", "message"),
    [
        (*_binary_answer(80, [2, 10], b"\0" * 40), "binary_data_size 80 does not fit"),
        (*_binary_answer(40, [2, 10], b"\0" * 40), "40 bytes do not fill shape"),
        (*_binary_answer("80", [2, 10], b"\0" * 80), "binary_data_size '80' does not fit"),
        (b"{}", "99", "beyond the 2 bytes"),
        (b"{}", "lots", "bad Inference-Header-Content-Length"),
    ],
)
def test_malformed_binary_answers_are_bad_responses(
    content: bytes, length: str, message: str
) -> None:
    """Sizes that do not add up, and bad header lengths, raise TritonBadResponse."""
    with pytest.raises(TritonBadResponse, match=message):
        decode_infer_response(content, length, "test")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.one_of(st.none(), st.integers(-5, 80).map(str)))
def test_any_bytes_decode_or_raise_bad_response(content: bytes, length: str | None) -> None:
    """Arbitrary bytes and header lengths never raise anything but TritonBadResponse."""
    try:
        result = decode_infer_response(content, length, "test")
    except TritonBadResponse:
        return
    assert all(isinstance(name, str) for name in result.outputs)
