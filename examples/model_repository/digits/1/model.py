"""Python-backend model: the digits MLP in FP32, FP16 or INT8, with fault knobs.

Runs inside Triton's Python backend stub, so it imports only numpy (plus the
backend's own ``triton_python_backend_utils``), and PyTorch when ``device`` is
``cuda``. Every behaviour is chosen by a ``parameters`` entry of the model config,
read once in ``initialize()``; see ``config.pbtxt`` for the list. A reload with a
config override switches it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

BAD_CALIBRATION = 0.1
OOM_TEXT = (
    "CUDA out of memory. Tried to allocate {need} MiB for activations of max batch {batch} "
    "(GPU 0; 79.15 GiB total capacity; 78.90 GiB already allocated)"
)


def _quantize(a: np.ndarray, scale: np.ndarray | np.float32) -> np.ndarray:
    return np.clip(np.rint(a / scale), -127, 127).astype(np.int8)


class DigitsNet:
    """The MLP's forward pass in one precision."""

    def __init__(self, weights: Any, precision: str, calibration: float) -> None:
        self.precision = precision
        self.w = [weights["w0"], weights["w1"]]
        self.b = [weights["b0"], weights["b1"]]
        # INT8: symmetric per-output-channel weight scales; activation scales from the
        # calibrated ranges, multiplied by `calibration` (1.0 = as calibrated)
        self.w_scale = [np.abs(w).max(axis=0) / np.float32(127) for w in self.w]
        self.w_q = [_quantize(w, s) for w, s in zip(self.w, self.w_scale, strict=True)]
        self.a_scale = [
            np.float32(weights["calib_in"] * calibration / 127),
            np.float32(weights["calib_hidden"] * calibration / 127),
        ]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.precision == "fp16":
            h = x.astype(np.float16)
            for i in range(2):
                h = h @ self.w[i].astype(np.float16) + self.b[i].astype(np.float16)
                if i == 0:
                    h = np.maximum(h, np.float16(0))
            return h.astype(np.float32)
        if self.precision == "int8":
            h = x
            for i in range(2):
                xq = _quantize(h, self.a_scale[i])
                acc = xq.astype(np.int32) @ self.w_q[i].astype(np.int32)
                h = acc.astype(np.float32) * (self.a_scale[i] * self.w_scale[i]) + self.b[i]
                if i == 0:
                    h = np.maximum(h, np.float32(0))
            return h.astype(np.float32)
        h = np.maximum(x @ self.w[0] + self.b[0], np.float32(0))
        return (h @ self.w[1] + self.b[1]).astype(np.float32)


class TorchNet:
    """The same forward pass on a CUDA GPU through PyTorch (``device: cuda``).

    INT8 keeps the numpy path's arithmetic: integer-valued float32 tensors multiply
    exactly (|products| <= 127 * 127, sums of 64 stay far below 2**24).
    """

    def __init__(self, net: DigitsNet) -> None:
        try:
            import torch
        except ImportError as exc:
            raise pb_utils.TritonModelException(
                f"parameter 'device': cuda needs PyTorch in the stub's Python ({exc})"
            ) from None
        if not torch.cuda.is_available():
            raise pb_utils.TritonModelException(
                "parameter 'device': cuda, but PyTorch sees no CUDA GPU"
            )
        self.torch = torch
        self.precision = net.precision
        cuda = torch.device("cuda")

        def put(a: np.ndarray) -> Any:
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(cuda)

        self.w = [put(w) for w in net.w]
        self.b = [put(b) for b in net.b]
        self.w_q = [put(w.astype(np.float32)) for w in net.w_q]
        self.w_scale = [put(s) for s in net.w_scale]
        self.a_scale = [float(a) for a in net.a_scale]

    def respond(self, tensor: Any) -> Any:
        """INPUT tensor in, LOGITS tensor out, through DLPack (no numpy in between)."""
        torch = self.torch
        with torch.inference_mode():
            h = torch.utils.dlpack.from_dlpack(tensor.to_dlpack()).to("cuda").float()
            for i in range(2):
                if self.precision == "fp16":
                    h = h.half() @ self.w[i].half() + self.b[i].half()
                elif self.precision == "int8":
                    q = torch.clamp(torch.round(h / self.a_scale[i]), -127, 127)
                    h = (q @ self.w_q[i]) * (self.a_scale[i] * self.w_scale[i]) + self.b[i]
                else:
                    h = h @ self.w[i] + self.b[i]
                if i == 0:
                    h = torch.clamp(h, min=0)
            out = h.float().contiguous()
        return pb_utils.Tensor.from_dlpack("LOGITS", torch.utils.dlpack.to_dlpack(out))


def _plan_precision(args: dict[str, str], config: dict[str, Any]) -> str:
    """The precision the served file itself stands for, when no parameter names one.

    Real deployments switch TensorRT plans, not parameters: a second plan file named by
    ``default_model_filename`` (here ``model_<precision>.py``), or a second model version
    (here a ``PRECISION`` file in the version folder, as a plan built at that precision).
    """
    name = str(config.get("default_model_filename") or "")
    stem = name.removesuffix(".py")
    if stem.startswith("model_") and stem != name:
        return stem.removeprefix("model_")
    marker = Path(args["model_repository"]) / args["model_version"] / "PRECISION"
    return marker.read_text().strip().lower() if marker.is_file() else "fp32"


def _params(model_config: dict[str, Any]) -> dict[str, str]:
    raw = model_config.get("parameters") or {}
    return {k: str(v.get("string_value", "")) for k, v in raw.items()}


def _number(params: dict[str, str], key: str, default: float) -> float:
    text = params.get(key, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise pb_utils.TritonModelException(
            f"parameter {key!r}: expected a number, got {text!r}"
        ) from None


class TritonPythonModel:
    """The entry point Triton's Python backend looks for."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = _params(config)
        plan = _plan_precision(args, config)
        precision = params.get("precision", plan).strip().lower() or plan
        if precision not in ("fp32", "fp16", "int8"):
            raise pb_utils.TritonModelException(
                f"parameter 'precision': expected fp32, fp16 or int8, got {precision!r}"
            )
        calibration_text = params.get("int8_calibration", "good").strip().lower() or "good"
        if calibration_text == "good":
            calibration = 1.0
        elif calibration_text == "bad":
            calibration = BAD_CALIBRATION
        else:
            calibration = _number(params, "int8_calibration", 1.0)
            if calibration <= 0:
                raise pb_utils.TritonModelException("parameter 'int8_calibration' must be > 0")

        self.max_batch_size = int(config.get("max_batch_size", 0))
        self.output_dtype = pb_utils.triton_string_to_numpy(
            pb_utils.get_output_config_by_name(config, "LOGITS")["data_type"]
        )
        weights_path = Path(args["model_repository"]) / args["model_version"] / "weights.npz"
        with np.load(weights_path) as weights:
            cpu_net = DigitsNet(dict(weights), precision, calibration)
        device = params.get("device", "cpu").strip().lower() or "cpu"
        if device not in ("cpu", "cuda"):
            raise pb_utils.TritonModelException(
                f"parameter 'device': expected cpu or cuda, got {device!r}"
            )
        self.net: DigitsNet | TorchNet = TorchNet(cpu_net) if device == "cuda" else cpu_net

        self.delay_s = _number(params, "delay_ms", 0.0) / 1000.0
        self.jitter_s = _number(params, "delay_jitter_ms", 0.0) / 1000.0
        slow_above = int(_number(params, "slow_above_batch", 0))
        # the slowdown is a property of the configured batch size: reducing it fixes it
        if slow_above > 0 and self.max_batch_size <= slow_above:
            self.delay_s = self.jitter_s = 0.0
        self.error_rate = _number(params, "error_rate", 0.0)
        self.error_message = params.get("error_message", "") or "injected error"
        oom_above = int(_number(params, "oom_above_batch", 0))
        self.oom_message: str | None = None
        if oom_above > 0 and self.max_batch_size > oom_above:
            need = 64 * self.max_batch_size
            self.oom_message = OOM_TEXT.format(need=need, batch=self.max_batch_size)
        self.hang_s = _number(params, "hang_s", 0.0)
        self.rng = np.random.default_rng(int(_number(params, "seed", 0)))

    def execute(self, requests: list[Any]) -> list[Any]:
        if self.hang_s > 0:
            time.sleep(self.hang_s)
        delay = self.delay_s
        if self.jitter_s > 0:
            delay += float(self.rng.uniform(0.0, self.jitter_s))
        if delay > 0:
            time.sleep(delay)
        return [self._one(request) for request in requests]

    def _one(self, request: Any) -> Any:
        if self.oom_message is not None:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(self.oom_message))
        if self.error_rate > 0 and float(self.rng.random()) < self.error_rate:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(self.error_message))
        tensor = pb_utils.get_input_tensor_by_name(request, "INPUT")
        if isinstance(self.net, TorchNet):
            return pb_utils.InferenceResponse(output_tensors=[self.net.respond(tensor)])
        x = tensor.as_numpy()
        logits = self.net(x.astype(np.float32, copy=False)).astype(self.output_dtype)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("LOGITS", logits)])

    def finalize(self) -> None:
        self.net = None  # type: ignore[assignment]
