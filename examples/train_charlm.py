"""Train the example streaming model: a character-level language model (numpy only).

The corpus is text that ships with Python itself: the docstrings of a fixed list of
standard-library modules, so anyone can rebuild the weights without downloads. The
model is a small MLP over the last ``CONTEXT`` characters (embeddings, one tanh hidden
layer, softmax over the vocabulary), trained with Adam on cross-entropy. Greedy
decoding of it is deterministic, which is what a streaming canary needs.

    python examples/train_charlm.py [--steps N] [--out PATH]

writes ``examples/llm_repository/charlm/1/weights.npz`` (about 0.3 MB).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import time
from pathlib import Path

import numpy as np

MODULES = (
    "argparse",
    "asyncio",
    "collections",
    "contextlib",
    "dataclasses",
    "functools",
    "heapq",
    "itertools",
    "json",
    "logging",
    "pathlib",
    "pickle",
    "queue",
    "random",
    "re",
    "shutil",
    "statistics",
    "string",
    "subprocess",
    "textwrap",
    "threading",
    "typing",
    "unittest",
    "zipfile",
)
VOCAB = " !\"#$%&'()*+,-./0123456789:;<=>?@[]_`abcdefghijklmnopqrstuvwxyz{|}\n"
"""Lower-cased printable characters; anything else maps to '?' (which is in it)."""
CONTEXT = 16
EMBED = 16
HIDDEN = 256
OUT = Path(__file__).parent / "llm_repository" / "charlm" / "1" / "weights.npz"


def corpus() -> str:
    """Docstrings of the modules above and of their public functions and classes."""
    parts: list[str] = []
    for name in MODULES:
        module = importlib.import_module(name)
        parts.append(inspect.getdoc(module) or "")
        for attr in sorted(dir(module)):
            obj = getattr(module, attr, None)
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) == name:
                parts.append(inspect.getdoc(obj) or "")
    return "\n".join(p.lower() for p in parts if p)


def encode(text: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(VOCAB)}
    unknown = index["?"]
    return np.array([index.get(c, unknown) for c in text], dtype=np.int64)


def train(steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Adam on random windows of the corpus; returns the weights."""
    rng = np.random.default_rng(seed)
    ids = encode(corpus())
    v = len(VOCAB)
    params = {
        "emb": rng.normal(0, 0.1, (v, EMBED)),
        "w0": rng.normal(0, 1 / np.sqrt(CONTEXT * EMBED), (CONTEXT * EMBED, HIDDEN)),
        "b0": np.zeros(HIDDEN),
        "w1": rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, v)),
        "b1": np.zeros(v),
    }
    m = {k: np.zeros_like(p) for k, p in params.items()}
    s = {k: np.zeros_like(p) for k, p in params.items()}
    batch, lr, b1, b2 = 256, 3e-3, 0.9, 0.999
    started = time.monotonic()
    for step in range(1, steps + 1):
        at = rng.integers(0, len(ids) - CONTEXT - 1, batch)
        ctx = ids[at[:, None] + np.arange(CONTEXT)]
        target = ids[at + CONTEXT]
        x = params["emb"][ctx].reshape(batch, -1)
        h = np.tanh(x @ params["w0"] + params["b0"])
        logits = h @ params["w1"] + params["b1"]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(batch), target] + 1e-12).mean()
        d = p
        d[np.arange(batch), target] -= 1
        d /= batch
        grads = {"w1": h.T @ d, "b1": d.sum(axis=0)}
        dh = (d @ params["w1"].T) * (1 - h**2)
        grads["w0"] = x.T @ dh
        grads["b0"] = dh.sum(axis=0)
        dx = (dh @ params["w0"].T).reshape(batch, CONTEXT, EMBED)
        demb = np.zeros_like(params["emb"])
        np.add.at(demb, ctx, dx)
        grads["emb"] = demb
        rate = lr * (0.1 ** (step / steps))  # decay to a tenth over the run
        for k, g in grads.items():
            m[k] = b1 * m[k] + (1 - b1) * g
            s[k] = b2 * s[k] + (1 - b2) * g * g
            mh, sh = m[k] / (1 - b1**step), s[k] / (1 - b2**step)
            params[k] -= rate * mh / (np.sqrt(sh) + 1e-8)
        if step % 500 == 0 or step == steps:
            print(f"step {step}: loss {loss:.3f} ({time.monotonic() - started:.0f} s)")
    return {k: p.astype(np.float32) for k, p in params.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    print(f"corpus: {len(corpus())} characters from {len(MODULES)} modules")
    weights = train(args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, vocab=np.array(list(VOCAB)), context=np.array(CONTEXT), **weights)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
