"""Train the example model: a small MLP (64 -> 32 -> 10) on scikit-learn's digits.

Deterministic: the same weights and golden set come out on every run. Writes

* ``examples/model_repository/digits/1/weights.npz`` -- FP32 weights, biases and the
  INT8 calibration ranges (max |activation| per layer input, seen on training data);
* ``examples/golden/digits.npz`` -- held-out rows as ``INPUT``, the FP32 logits as
  ``reference__LOGITS`` and the true ``labels``.

The forward pass here is the same arithmetic as ``model.py``'s FP32 path, so the
served model reproduces the references exactly.

Run: ``python examples/train_digits.py`` (needs scikit-learn).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent
GOLDEN_ROWS = 48
SEED = 7


def forward(x: np.ndarray, w: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """FP32 logits, exactly as the served model computes them."""
    h = np.maximum(x @ w[0] + b[0], np.float32(0))
    return (h @ w[1] + b[1]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=SEED, stratify=y
    )
    clf = MLPClassifier(
        hidden_layer_sizes=(32,), max_iter=400, random_state=SEED, tol=1e-5, alpha=1e-3
    )
    with warnings.catch_warnings():
        # a fixed iteration budget keeps the run deterministic; the fit is good enough
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    w = [c.astype(np.float32) for c in clf.coefs_]
    b = [c.astype(np.float32) for c in clf.intercepts_]

    hidden = np.maximum(x_train @ w[0] + b[0], 0)
    weights_path = args.out / "model_repository" / "digits" / "1" / "weights.npz"
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        weights_path,
        w0=w[0],
        b0=b[0],
        w1=w[1],
        b1=b[1],
        # calibration: the range each INT8-quantized activation must cover
        calib_in=np.float32(np.abs(x_train).max()),
        calib_hidden=np.float32(np.abs(hidden).max()),
    )

    golden_x = x_test[:GOLDEN_ROWS]
    golden_y = y_test[:GOLDEN_ROWS]
    golden_path = args.out / "golden" / "digits.npz"
    golden_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        golden_path,
        INPUT=golden_x,
        reference__LOGITS=forward(golden_x, w, b),
        labels=golden_y,
    )
    test_acc = float((forward(x_test, w, b).argmax(axis=1) == y_test).mean())
    print(f"test accuracy {test_acc:.4f}; wrote {weights_path} and {golden_path}")


if __name__ == "__main__":
    main()
