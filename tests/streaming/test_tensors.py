"""BYTES and BF16 tensors: golden forms, wire bytes, JSON answers, the HTTP codec."""

from __future__ import annotations

import json
import struct

import ml_dtypes
import numpy as np
import pytest

from sentinel.probes import tensors
from sentinel.probes.triton import TritonBadResponse, datatype_of, parse_json_output
from sentinel.probes.triton_http import decode_infer_response, encode_binary_request


def test_text_arrays_are_bytes_and_bfloat16_is_bf16() -> None:
    """Unicode, fixed-width bytes and object arrays are BYTES; ml_dtypes.bfloat16 is BF16."""
    assert "BYTES" == datatype_of(np.array(["a"]))
    assert "BYTES" == datatype_of(np.array([b"a"]))
    assert "BYTES" == datatype_of(np.array([b"a"], dtype=np.object_))
    assert "BF16" == datatype_of(np.zeros(2, dtype=ml_dtypes.bfloat16))
    assert "FP32" == datatype_of(np.zeros(2, dtype=np.float32))


def test_golden_forms_fit_their_wire_datatypes() -> None:
    """Text stands for BYTES and FP32 for BF16 (an .npz holds neither natively); not the reverse."""
    assert tensors.fits("BYTES", np.dtype("<U4"))
    assert tensors.fits("BF16", np.dtype(np.float32))
    assert not tensors.fits("FP32", np.dtype("<U4"))
    assert not tensors.fits("BYTES", np.dtype(np.float32))
    assert not tensors.fits("INT32", np.dtype(np.int64))


def test_conform_encodes_text_as_utf8_and_rounds_to_bfloat16() -> None:
    """conform() gives object arrays of UTF-8 bytes and bfloat16 arrays."""
    text = tensors.conform(np.array([["héllo"], ["x"]]), "BYTES")
    assert np.object_ == text.dtype
    assert ["héllo".encode(), b"x"] == text.reshape(-1).tolist()
    bf = tensors.conform(np.array([1.0, 3.14159], dtype=np.float32), "BF16")
    assert tensors.BF16 == bf.dtype
    assert [1.0, 3.140625] == bf.astype(np.float32).tolist()
    with pytest.raises(tensors.TensorError, match="cannot be sent as FP32"):
        tensors.conform(np.array(["a"]), "FP32", "INPUT")


def test_bytes_wire_form_is_length_prefixed_and_round_trips() -> None:
    """Each BYTES element is a 4-byte little-endian length and its bytes, and reads back."""
    array = np.array([[b"ab"], [b""]], dtype=np.object_)
    raw = tensors.to_raw(array, "BYTES")
    assert struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0) == raw
    back = tensors.from_raw(raw, "BYTES", (2, 1))
    assert [b"ab", b""] == back.reshape(-1).tolist()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x05\x00\x00\x00ab", "runs past"),
        (b"\x01\x00", "no length prefix"),
        (b"\x00\x00\x00\x00\x00\x00\x00\x00\x00", "left over"),
    ],
)
def test_bad_bytes_wire_form_is_refused(raw: bytes, message: str) -> None:
    """A truncated or overlong BYTES buffer is a TensorError naming the problem."""
    with pytest.raises(tensors.TensorError, match=message):
        tensors.from_raw(raw, "BYTES", (1,))


def test_bf16_wire_form_round_trips() -> None:
    """BF16 travels as 2 little-endian bytes per value and reads back as bfloat16."""
    array = np.array([[1.5, -2.0]], dtype=ml_dtypes.bfloat16)
    raw = tensors.to_raw(array, "BF16")
    assert 4 == len(raw)
    back = tensors.from_raw(raw, "BF16", (1, 2))
    assert tensors.BF16 == back.dtype
    assert [[1.5, -2.0]] == back.astype(np.float32).tolist()
    with pytest.raises(tensors.TensorError, match="do not fill"):
        tensors.from_raw(raw[:3], "BF16", (1, 2))


def test_http_codec_carries_bytes_and_bf16_both_ways() -> None:
    """A binary request holds BYTES/BF16 inputs; a binary answer of both decodes."""
    inputs = {
        "TEXT": np.array([["hi"]]),
        "TEMPERATURE": np.array([[0.5]], dtype=ml_dtypes.bfloat16),
    }
    body, head_len = encode_binary_request(inputs, ["OUT"])
    header = json.loads(body[:head_len])
    assert ["BYTES", "BF16"] == [i["datatype"] for i in header["inputs"]]
    assert [6, 2] == [i["parameters"]["binary_data_size"] for i in header["inputs"]]
    text_raw = tensors.to_raw(np.array([b"ok"], dtype=np.object_), "BYTES")
    bf_raw = tensors.to_raw(np.array([2.5], dtype=ml_dtypes.bfloat16), "BF16")
    answer = {
        "model_version": "1",
        "outputs": [
            {"name": "T", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}},
            {"name": "B", "datatype": "BF16", "shape": [1], "parameters": {"binary_data_size": 2}},
        ],
    }
    head = json.dumps(answer).encode()
    result = decode_infer_response(head + text_raw + bf_raw, str(len(head)), "test")
    assert [b"ok"] == result.outputs["T"].tolist()
    assert [2.5] == result.outputs["B"].astype(np.float32).tolist()


def test_json_answers_carry_bytes_as_strings_and_bf16_as_numbers() -> None:
    """A JSON answer's BYTES data is strings and its BF16 data numbers; bad data is refused."""
    name, text = parse_json_output(
        {"name": "T", "datatype": "BYTES", "shape": [2], "data": ["a", "bc"]}
    )
    assert ("T", [b"a", b"bc"]) == (name, text.tolist())
    _, bf = parse_json_output({"name": "B", "datatype": "BF16", "shape": [1], "data": [0.1]})
    assert tensors.BF16 == bf.dtype
    with pytest.raises(TritonBadResponse, match="not a list of strings"):
        parse_json_output({"name": "T", "datatype": "BYTES", "shape": [1], "data": [1]})
    with pytest.raises(TritonBadResponse, match="do not fill"):
        parse_json_output({"name": "T", "datatype": "BYTES", "shape": [2], "data": ["a"]})
