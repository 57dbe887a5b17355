"""Python-backend model: score a text (BF16 mean log-probability) and continue it (BYTES).

Shares the language model of ``charlm`` (loaded from its folder). numpy in the Python
backend has no bfloat16, so BF16 tensors cross through DLPack: their 16-bit patterns
are read and written as uint16 (a bfloat16 is the top half of a float32).
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

CHARLM = Path(__file__).resolve().parents[2] / "charlm" / "1"


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensor(ctypes.Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(_DLManagedTensor))
_DLManagedTensor._fields_ = [
    ("dl_tensor", _DLTensor),
    ("manager_ctx", ctypes.c_void_p),
    ("deleter", _DELETER),
]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_NO_DELETE = _DELETER(lambda _: None)  # the memory stays with _KEEP below
_KDL_CPU, _KDL_BFLOAT = 1, 4
_KEEP: list[Any] = []


def bf16_to_float(tensor: Any) -> np.ndarray:
    """A BF16 input tensor as float32 (its bits read through DLPack)."""
    capsule = tensor.to_dlpack()  # held until the bits are copied: it owns them
    managed = _DLManagedTensor.from_address(_capsule_pointer(capsule, b"dltensor"))
    t = managed.dl_tensor
    shape = tuple(t.shape[i] for i in range(t.ndim))
    raw = ctypes.string_at(t.data + t.byte_offset, 2 * int(np.prod(shape)))
    bits = np.frombuffer(raw, dtype=np.uint16).reshape(shape)
    return (bits.astype(np.uint32) << 16).view(np.float32)


def float_to_bf16(name: str, values: np.ndarray) -> Any:
    """A BF16 output tensor from float32 values (rounded to nearest even)."""
    as_int = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = as_int + 0x7FFF + ((as_int >> 16) & 1)
    bits = np.ascontiguousarray((rounded >> 16).astype(np.uint16))
    shape = (ctypes.c_int64 * bits.ndim)(*bits.shape)
    managed = _DLManagedTensor()
    managed.dl_tensor = _DLTensor(
        bits.ctypes.data,
        _DLDevice(_KDL_CPU, 0),
        bits.ndim,
        _DLDataType(_KDL_BFLOAT, 16, 1),
        shape,
        None,
        0,
    )
    managed.deleter = _NO_DELETE
    _KEEP.append((bits, shape, managed))
    capsule = _capsule_new(ctypes.addressof(managed), b"dltensor", None)
    return pb_utils.Tensor.from_dlpack(name, capsule)


def _load_charlm() -> Any:
    spec = importlib.util.spec_from_file_location("charlm_model", CHARLM / "model.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {CHARLM / 'model.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        charlm = _load_charlm()
        with np.load(CHARLM / "weights.npz") as weights:
            self.lm = charlm.CharLM(weights, params.get("precision", "fp32"))
        self.continue_tokens = int(params.get("continue_tokens", "12"))

    def execute(self, requests: list[Any]) -> list[Any]:
        _KEEP.clear()  # the previous answers have been sent
        return [self._one(r) for r in requests]

    def _one(self, request: Any) -> Any:
        texts = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
        temps = bf16_to_float(pb_utils.get_input_tensor_by_name(request, "TEMPERATURE"))
        temps = temps.reshape(-1)
        continuations, logprobs = [], []
        for raw, temperature in zip(texts, temps, strict=True):
            ids = self.lm.encode(raw.decode() if isinstance(raw, bytes) else str(raw))
            logprobs.append(self._logprob(ids, max(float(temperature), 1e-3)))
            out = []
            for _ in range(self.continue_tokens):
                token = self.lm.next_token(ids)
                ids.append(token)
                out.append(self.lm.vocab[token])
            continuations.append("".join(out).encode())
        n = len(texts)
        return pb_utils.InferenceResponse(
            [
                pb_utils.Tensor(
                    "CONTINUATION", np.array(continuations, dtype=np.object_).reshape(n, 1)
                ),
                float_to_bf16("LOGPROB", np.array(logprobs, dtype=np.float32).reshape(n, 1)),
            ]
        )

    def _logprob(self, ids: list[int], temperature: float) -> float:
        """Mean log-probability of each character given the ones before it."""
        if len(ids) < 2:
            return 0.0
        total = 0.0
        for i in range(1, len(ids)):
            logits = self.lm.logits(ids[:i]) / temperature
            logits -= logits.max()
            total += logits[ids[i]] - np.log(np.exp(logits).sum())
        return total / (len(ids) - 1)
