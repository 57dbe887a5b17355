"""Python-backend model: a character-level language model that streams, with fault knobs.

Decoupled: each request gets one response per generated character (a token) and then
an empty response flagged final. Runs inside Triton's Python backend stub, so it
imports only numpy (plus the backend's own ``triton_python_backend_utils``). The
knobs are ``parameters`` of the model config, read once in ``initialize()`` (see
``config.pbtxt``); a reload with a config override switches them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

try:  # only inside Triton; the language model below also runs on its own
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover
    pb_utils = None

_BITS = {"fp32": 0, "fp16": -16, "bf16": -8, "int8": 8, "int4": 4}
"""Integer bits of a quantized plan; negative: a float plan with that many mantissa bits."""


def fake_quantize(w: np.ndarray, bits: int) -> np.ndarray:
    """Round weights to ``bits``-bit integers per output channel and back (0 = as is);
    fp16 and bf16 round them to those float types."""
    if bits == 0:
        return w
    if bits == -16:
        return w.astype(np.float16).astype(np.float64)
    if bits == -8:  # bfloat16 is the top half of a float32
        top = w.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
        return top.view(np.float32).astype(np.float64)
    top = 2 ** (bits - 1) - 1
    scale = np.abs(w).max(axis=0, keepdims=True) / top
    scale[scale == 0] = 1
    return np.clip(np.rint(w / scale), -top, top) * scale


class CharLM:
    """Greedy decoding of the MLP trained by examples/train_charlm.py."""

    def __init__(self, weights: Any, precision: str = "fp32") -> None:
        if precision not in _BITS:
            raise ValueError(f"precision must be one of {sorted(_BITS)}, not {precision!r}")
        bits = _BITS[precision]
        self.vocab = [str(c) for c in weights["vocab"]]
        self.index = {c: i for i, c in enumerate(self.vocab)}
        self.context = int(weights["context"])
        # float64 arithmetic: the argmax does not hinge on the BLAS's summation order
        self.emb = fake_quantize(weights["emb"].astype(np.float64), bits)
        self.w0 = fake_quantize(weights["w0"].astype(np.float64), bits)
        self.b0 = weights["b0"].astype(np.float64)
        self.w1 = fake_quantize(weights["w1"].astype(np.float64), bits)
        self.b1 = weights["b1"].astype(np.float64)

    def encode(self, text: str) -> list[int]:
        unknown = self.index["?"]
        return [self.index.get(c, unknown) for c in text.lower()]

    def logits(self, ids: list[int]) -> np.ndarray:
        """Scores of every next character after ``ids`` (the prompt's left pad is spaces)."""
        window = ([self.index[" "]] * self.context + ids)[-self.context :]
        x = self.emb[window].reshape(-1)
        h = np.tanh(x @ self.w0 + self.b0)
        return h @ self.w1 + self.b1

    def next_token(self, ids: list[int]) -> int:
        return int(np.argmax(self.logits(ids)))


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        here = Path(__file__).parent
        with np.load(here / "weights.npz") as weights:
            self.lm = CharLM(weights, params.get("precision", "fp32"))
        self.max_tokens = int(params.get("max_tokens", "256"))
        self.token_delay_s = float(params.get("token_delay_ms", "0")) / 1000
        self.first_token_delay_s = float(params.get("first_token_delay_ms", "0")) / 1000
        self.stall_after = int(params.get("stall_after_tokens", "0"))
        self.stall_s = float(params.get("stall_s", "0"))
        self.garbage_after = int(params.get("garbage_after_tokens", "0"))
        self.wedge_after = int(params.get("wedge_after_requests", "0"))
        self.requests = 0
        self.rng = np.random.default_rng(int(params.get("seed", "0")))

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sender = request.get_response_sender()
            try:
                self._generate(request, sender)
            except Exception as exc:  # the client hears about it, the stream still ends
                error = pb_utils.TritonError(f"charlm: {exc}")
                sender.send(
                    pb_utils.InferenceResponse(error=error),
                    flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL,
                )
        return None

    def _generate(self, request: Any, sender: Any) -> None:
        prompt = pb_utils.get_input_tensor_by_name(request, "PROMPT").as_numpy().reshape(-1)[0]
        text = prompt.decode() if isinstance(prompt, bytes) else str(prompt)
        wanted = pb_utils.get_input_tensor_by_name(request, "MAX_TOKENS")
        limit = self.max_tokens
        if wanted is not None:
            limit = min(limit, int(wanted.as_numpy().reshape(-1)[0]))
        ids = self.lm.encode(text)
        self.requests += 1
        stall_after = self.stall_after
        if 0 < self.wedge_after < self.requests:  # wedged: every stream stalls until a reload
            stall_after = stall_after or 1
        if not self._wait(sender, self.first_token_delay_s):
            return
        for n in range(1, limit + 1):
            if n > 1 and not self._wait(sender, self.token_delay_s):
                return
            token = self.lm.next_token(ids)
            ids.append(token)
            char = self.lm.vocab[token]
            if 0 < self.garbage_after < n:
                char = self.lm.vocab[int(self.rng.integers(len(self.lm.vocab)))]
            out = pb_utils.Tensor("TEXT", np.array([char.encode()], dtype=np.object_))
            sender.send(pb_utils.InferenceResponse(output_tensors=[out]))
            if n == stall_after and not self._wait(sender, self.stall_s):
                return
        sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    @staticmethod
    def _wait(sender: Any, seconds: float) -> bool:
        """Sleep, waking to see whether the client gave up; False when it did."""
        end = time.monotonic() + seconds
        while True:
            if sender.is_cancelled():
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                return False
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.05))
