"""Golden sets, agreement arithmetic and batch-size capping (no server needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from triton_fixtures import GOLDEN_DIGITS

from sentinel.probes.canary import (
    GoldenSetError,
    batch_sizes,
    check_against_model,
    compare,
    load_golden_set,
)
from sentinel.probes.triton import ModelMetadata, TensorSpec

DIGITS = ModelMetadata(
    name="digits",
    versions=("1",),
    platform="python",
    inputs=(TensorSpec("INPUT", "FP32", (-1, 64)),),
    outputs=(TensorSpec("LOGITS", "FP32", (-1, 10)),),
)


def _write(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_committed_golden_set_fits_the_digits_model() -> None:
    """The shipped golden set loads and matches the model's metadata."""
    golden = load_golden_set(GOLDEN_DIGITS)
    assert check_against_model(golden, DIGITS, 32) == "LOGITS"
    assert (
        golden.rows,
        list(golden.inputs),
        list(golden.references),
    ) == (48, ["INPUT"], ["LOGITS"])


def test_take_repeats_rows_when_asked_for_more() -> None:
    """A batch larger than the set repeats the rows (and their references and labels)."""
    golden = load_golden_set(GOLDEN_DIGITS)
    inputs, refs, labels = golden.take(golden.rows + 2)
    assert labels is not None
    assert golden.labels is not None
    np.testing.assert_array_equal(golden.inputs["INPUT"][:2], inputs["INPUT"][-2:])
    np.testing.assert_array_equal(golden.references["LOGITS"][:2], refs["LOGITS"][-2:])
    np.testing.assert_array_equal(golden.labels[:2], labels[-2:])


def test_missing_file_is_named(tmp_path: Path) -> None:
    """A golden set that does not exist is an error naming the path."""
    with pytest.raises(GoldenSetError, match=r"nope\.npz: no such file"):
        load_golden_set(tmp_path / "nope.npz")


def test_not_an_npz_is_an_error(tmp_path: Path) -> None:
    """A file that is not an .npz is a clear error, not a crash."""
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(GoldenSetError, match=r"bad\.npz: not a readable \.npz"):
        load_golden_set(bad)


def test_set_without_references_is_an_error(tmp_path: Path) -> None:
    """Inputs without any reference__ output are refused."""
    path = _write(tmp_path / "g.npz", INPUT=np.zeros((2, 64), np.float32))
    with pytest.raises(GoldenSetError, match="no reference outputs"):
        load_golden_set(path)


def test_row_counts_must_agree(tmp_path: Path) -> None:
    """Inputs and references with different row counts are refused, with the counts."""
    path = _write(
        tmp_path / "g.npz",
        INPUT=np.zeros((3, 64), np.float32),
        reference__LOGITS=np.zeros((2, 10), np.float32),
    )
    with pytest.raises(GoldenSetError, match="INPUT: 3, reference__LOGITS: 2"):
        load_golden_set(path)


def test_labels_must_be_one_integer_per_row(tmp_path: Path) -> None:
    """Float labels are refused."""
    path = _write(
        tmp_path / "g.npz",
        INPUT=np.zeros((2, 64), np.float32),
        reference__LOGITS=np.zeros((2, 10), np.float32),
        labels=np.zeros(2, np.float32),
    )
    with pytest.raises(GoldenSetError, match="labels: expected 2 integers"):
        load_golden_set(path)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"IMAGE": np.zeros((2, 64), np.float32)}, r"missing \['INPUT'\], unknown \['IMAGE'\]"),
        ({"INPUT": np.zeros((2, 32), np.float32)}, r"INPUT: shape \(2, 32\) does not fit"),
        ({"INPUT": np.zeros((2, 64), np.float64)}, "INPUT: dtype float64 but the model's INPUT"),
    ],
)
def test_mismatch_with_model_metadata_names_the_tensor(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    """Names, shapes and dtypes that do not fit the model give an error naming them."""
    path = _write(tmp_path / "g.npz", reference__LOGITS=np.zeros((2, 10), np.float32), **arrays)
    golden = load_golden_set(path)
    with pytest.raises(GoldenSetError, match=message):
        check_against_model(golden, DIGITS, 32)


def test_reference_for_the_compared_output_is_required(tmp_path: Path) -> None:
    """Asking to compare an output the set has no reference for is an error."""
    path = _write(
        tmp_path / "g.npz",
        INPUT=np.zeros((2, 64), np.float32),
        reference__OTHER=np.zeros((2, 10), np.float32),
    )
    with pytest.raises(GoldenSetError, match="no 'reference__LOGITS' reference"):
        check_against_model(load_golden_set(path), DIGITS, 32)


def test_compare_by_hand() -> None:
    """Agreement figures match a hand computation on two rows."""
    reference = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    output = np.array([[1.0, 0.0], [3.0, 1.0]], np.float32)
    labels = np.array([0, 0])
    agreement = compare(output, reference, labels)
    expected_cosine = (1.0 + 2.0 / (np.sqrt(10.0) * 2.0)) / 2
    assert (agreement.max_abs_error, agreement.top1, agreement.accuracy) == (3.0, 0.5, 1.0)
    assert expected_cosine == pytest.approx(agreement.cosine)


def test_compare_with_non_finite_output() -> None:
    """NaN outputs give an infinite max error instead of a NaN that hides the problem."""
    reference = np.ones((1, 3), np.float32)
    output = np.array([[np.nan, 1.0, 1.0]], np.float32)
    assert float("inf") == compare(output, reference).max_abs_error


@pytest.mark.parametrize(
    ("wanted", "maximum", "expected"),
    [([1, 8, 32], 32, [1, 8, 32]), ([1, 8, 32], 4, [1, 4]), ([16], 0, [0])],
)
def test_batch_sizes_are_capped_by_the_model(
    wanted: list[int], maximum: int, expected: list[int]
) -> None:
    """Configured sizes above the model's max_batch_size are probed at that maximum."""
    assert expected == batch_sizes(wanted, maximum)
