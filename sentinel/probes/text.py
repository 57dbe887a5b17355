"""Agreement of generated text with its reference: exact match and normalised edit distance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sentinel.probes import tensors
from sentinel.probes.tensors import Array
from sentinel.vocabulary.samples import Agreement


def edit_distance(a: Sequence[object], b: Sequence[object]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) of two sequences."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def normalised_edit_distance(a: Sequence[object], b: Sequence[object]) -> float:
    """Edit distance over the longer length: 0 for equal sequences, 1 for nothing alike."""
    longest = max(len(a), len(b))
    return edit_distance(a, b) / longest if longest else 0.0


def text_agreement(output: Array, reference: Array) -> Agreement:
    """Agreement of a BYTES output with its reference, element by element.

    ``top1`` is the share of rows equal to their reference, ``cosine`` is 1 minus the mean
    normalised edit distance (1 = identical text), ``max_abs_error`` the largest
    normalised edit distance of any element.
    """
    out, ref = tensors.as_text(output), tensors.as_text(reference)
    rows = output.shape[0] if output.ndim else 1
    distances = [normalised_edit_distance(o, r) for o, r in zip(out, ref, strict=True)]
    per_row = np.array(distances, dtype=np.float64).reshape(rows, -1) if distances else None
    if per_row is None:
        return Agreement(max_abs_error=0.0, cosine=1.0, top1=1.0)
    return Agreement(
        max_abs_error=float(per_row.max()),
        cosine=float(1.0 - per_row.mean()),
        top1=float((per_row.max(axis=1) == 0).mean()),
    )
