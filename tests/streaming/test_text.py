"""Text agreement: edit distance, its normalised form, and BYTES outputs against references."""

from __future__ import annotations

import numpy as np

from sentinel.probes.text import edit_distance, normalised_edit_distance, text_agreement


def test_edit_distance_counts_insertions_deletions_and_substitutions() -> None:
    """Levenshtein distance on a few known pairs, in either order."""
    assert 3 == edit_distance("kitten", "sitting")
    assert 3 == edit_distance("sitting", "kitten")
    assert 0 == edit_distance("", "")
    assert 4 == edit_distance("", "abcd")


def test_normalised_distance_runs_from_zero_to_one() -> None:
    """Equal texts are 0, texts with nothing alike 1, partial changes in between."""
    assert 0.0 == normalised_edit_distance("same", "same")
    assert 1.0 == normalised_edit_distance("abc", "xyz")
    assert 0.25 == normalised_edit_distance("abcd", "abcx")


def test_text_agreement_of_bytes_rows() -> None:
    """top1 is the share of rows equal to their reference; cosine 1 minus the mean distance."""
    reference = np.array([["abcd"], ["wxyz"]])
    output = np.array([[b"abcd"], [b"wxya"]], dtype=np.object_)
    agreement = text_agreement(output, reference)
    assert 0.5 == agreement.top1
    assert 0.25 == agreement.max_abs_error
    assert 0.875 == agreement.cosine
