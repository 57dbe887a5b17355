"""Whatever JSON a server sends, the response parsers raise only TritonBadResponse."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.probes.triton import TritonBadResponse, parse_json_output, parse_metadata

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
