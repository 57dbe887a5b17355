"""Tensors of every KServe v2 datatype Triton uses, BYTES and BF16 included.

numpy has no bfloat16 and no length-prefixed strings, so two conventions hold in
sentinel (the ones ``tritonclient`` uses too):

* ``BF16`` tensors are numpy arrays of ``ml_dtypes.bfloat16``;
* ``BYTES`` tensors are object arrays of ``bytes``. A golden set (an ``.npz``, read
  without pickle) stores them as fixed-width ``S`` or unicode ``U`` arrays;
  :func:`conform` turns those into the wire form (UTF-8 for text).

On the wire (HTTP's binary tensor extension) a BYTES element is a 4-byte
little-endian length followed by its bytes; every other type is its raw
little-endian values.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]


class _FixedTypes(dict[str, "np.dtype[Any]"]):
    """Fixed-size datatypes and their numpy dtypes; BF16's (``ml_dtypes.bfloat16``) is
    imported on first use, since few models need it and the import costs ~3 MB of RSS."""

    def __missing__(self, datatype: str) -> np.dtype[Any]:
        if datatype != "BF16":
            raise KeyError(datatype)
        import ml_dtypes

        self["BF16"] = dtype = np.dtype(ml_dtypes.bfloat16)
        return dtype

    def get(self, datatype: str, default: Any = None) -> Any:
        try:  # dict.get skips __missing__
            return self[datatype]
        except KeyError:
            return default


NUMERIC: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
"""The datatypes numpy holds natively (the ones that travel as JSON numbers too)."""
FIXED = _FixedTypes(NUMERIC)
"""Fixed-size datatypes and their numpy dtypes (BYTES is the one variable-size type)."""
DATATYPES = (*FIXED, "BF16", "BYTES")


def __getattr__(name: str) -> np.dtype[Any]:
    """``tensors.BF16``: bfloat16's numpy dtype, imported when first asked for."""
    if name == "BF16":
        return FIXED["BF16"]
    raise AttributeError(name)


_TEXT_KINDS = "SUO"


class TensorError(ValueError):
    """Values that do not make a tensor of the datatype asked for; names the tensor."""


def datatype_of(array: Array) -> str:
    """The KServe v2 datatype of an array: bytes and text arrays are BYTES."""
    if array.dtype.kind in _TEXT_KINDS:
        return "BYTES"
    if array.dtype.name == "bfloat16":  # without importing ml_dtypes for every array
        return "BF16"
    for name, dtype in FIXED.items():
        if name != "BF16" and array.dtype == dtype:
            return name
    raise TensorError(f"no KServe datatype for numpy dtype {array.dtype}")


def fits(datatype: str, dtype: np.dtype[Any]) -> bool:
    """Whether a golden array of ``dtype`` can stand for a tensor of ``datatype``.

    Exact dtypes always fit; text (``S``/``U``/object) fits BYTES; FP32/FP64 fit BF16,
    since an ``.npz`` cannot hold bfloat16 portably.
    """
    if datatype == "BYTES":
        return dtype.kind in _TEXT_KINDS
    if datatype == "BF16" and dtype in (np.dtype(np.float32), np.dtype(np.float64)):
        return True
    return bool(FIXED.get(datatype) == dtype)


def conform(array: Array, datatype: str, name: str = "tensor") -> Array:
    """The wire form of a golden array for ``datatype`` (see :func:`fits`)."""
    if not fits(datatype, array.dtype):
        raise TensorError(f"{name}: dtype {array.dtype} cannot be sent as {datatype}")
    if datatype == "BYTES":
        return as_bytes_array(array)
    return np.ascontiguousarray(array, dtype=FIXED[datatype])


def as_bytes_array(array: Array) -> Array:
    """An object array of ``bytes`` (text encoded as UTF-8)."""
    out = np.empty(array.shape, dtype=np.object_)
    flat = out.reshape(-1)
    for i, item in enumerate(array.reshape(-1)):
        flat[i] = item.encode() if isinstance(item, str) else bytes(item)
    return out


def as_text(array: Array) -> list[str]:
    """Every element of a BYTES (or text) array as text, in order (invalid UTF-8 replaced)."""
    out = []
    for item in np.asarray(array).reshape(-1):
        out.append(item.decode(errors="replace") if isinstance(item, bytes) else str(item))
    return out


def to_raw(array: Array, datatype: str) -> bytes:
    """The binary-extension bytes of a tensor."""
    if datatype == "BYTES":
        return b"".join(
            struct.pack("<I", len(b)) + b for b in as_bytes_array(array).reshape(-1).tolist()
        )
    dtype = FIXED[datatype]
    return np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")).tobytes()


def raw_size(array: Array, datatype: str) -> int:
    """Length of :func:`to_raw`'s bytes."""
    return len(to_raw(array, datatype)) if datatype == "BYTES" else int(array.nbytes)


def from_raw(raw: bytes, datatype: str, shape: tuple[int, ...], name: str = "tensor") -> Array:
    """A tensor from its binary-extension bytes, checked against its shape."""
    if any(d < 0 for d in shape):
        raise TensorError(f"{name}: negative dimension in shape {shape}")
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_from_raw(raw, count, name).reshape(shape)
    dtype = FIXED.get(datatype)
    if dtype is None:
        raise TensorError(f"{name}: unsupported datatype {datatype!r}")
    if len(raw) != count * dtype.itemsize:
        raise TensorError(f"{name}: {len(raw)} bytes do not fill shape {shape}")
    little = dtype if datatype == "BF16" else dtype.newbyteorder("<")
    return np.frombuffer(raw, dtype=little).reshape(shape).astype(dtype)


def _bytes_from_raw(raw: bytes, count: int, name: str) -> Array:
    out = np.empty(count, dtype=np.object_)
    at = 0
    for i in range(count):
        if at + 4 > len(raw):
            raise TensorError(f"{name}: BYTES element {i} has no length prefix")
        (n,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + n > len(raw):
            raise TensorError(f"{name}: BYTES element {i} runs past the data")
        out[i] = raw[at : at + n]
        at += n
    if at != len(raw):
        raise TensorError(f"{name}: {len(raw) - at} bytes left over after {count} elements")
    return out


def from_json(data: list[Any], datatype: str, shape: tuple[int, ...], name: str) -> Array:
    """A tensor from a JSON answer's flat ``data`` list (BYTES as strings)."""
    if any(d < 0 for d in shape) or len(data) != math.prod(shape):
        raise TensorError(f"{name}: {len(data)} values do not fill shape {shape}")
    if datatype == "BYTES":
        if not all(isinstance(d, str) for d in data):
            raise TensorError(f"{name}: BYTES data is not a list of strings")
        return as_bytes_array(np.array(data, dtype=np.object_)).reshape(shape)
    dtype = FIXED.get(datatype)
    if dtype is None:
        raise TensorError(f"{name}: unsupported datatype {datatype!r}")
    if datatype == "BF16":  # JSON carries the numbers; round them to bfloat16
        try:
            return np.asarray(data, dtype=np.float64).astype(FIXED["BF16"]).reshape(shape)
        except (TypeError, ValueError):
            raise TensorError(f"{name}: data is not BF16 numbers") from None
    raise TensorError(f"{name}: not a BYTES or BF16 tensor")  # numbers: the adapter's own path
