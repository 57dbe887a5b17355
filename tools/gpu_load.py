"""GPU loads for the real-GPU verification run (docs/gpu-verification.md).

    python3 tools/gpu_load.py matmul --seconds 90     # bf16 matmuls flat out (torch)
    python3 tools/gpu_load.py oom --hold 10           # fill GPU memory until a real CUDA OOM
    python3 tools/gpu_load.py fault                   # an illegal address: an application Xid
    python3 tools/gpu_load.py sentinel record ...     # `sentinel record|gpu` without the
                                                      # other commands' imports

Runs on the device machine's own Python (torch, cupy there); prints what it
did as ``gpu_load: ...`` lines for the log.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

GIB = 1 << 30


def _say(msg: str) -> None:
    print(f"gpu_load: {msg}", flush=True)


def matmul(seconds: float, size: int) -> int:
    """Sustained bf16 matrix products, the load that showed SW power cap on an H200."""
    import torch

    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    end = time.monotonic() + seconds
    n = 0
    started = time.monotonic()
    while time.monotonic() < end:
        for _ in range(20):
            a @ b  # the product is the load
        torch.cuda.synchronize()
        n += 20
    spent = time.monotonic() - started
    tflops = 2 * size**3 * n / spent / 1e12
    _say(f"matmul: {n} products of {size}^3 bf16 in {spent:.1f} s, {tflops:.0f} TFLOP/s")
    return 0


def oom(hold: float) -> int:
    """Allocate until the CUDA allocator fails for real, hold, then release."""
    import torch

    blocks: list[Any] = []
    chunk = GIB
    error = ""
    while chunk >= 16 << 20:
        try:
            blocks.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
        except torch.cuda.OutOfMemoryError as exc:
            error = error or str(exc).splitlines()[0]
            chunk //= 4
    held = sum(b.numel() for b in blocks)
    free, total = torch.cuda.mem_get_info()
    _say(
        f"oom: CUDA out of memory after {held / GIB:.2f} GiB allocated; "
        f"cudaMemGetInfo free {free / GIB:.2f} of {total / GIB:.2f} GiB"
    )
    _say(f"oom: first error: {error}")
    time.sleep(hold)
    blocks.clear()
    torch.cuda.empty_cache()
    _say("oom: released")
    return 0


def fault() -> int:
    """A kernel writing to an unmapped address: the driver logs an application Xid."""
    import cupy as cp

    kernel = cp.RawKernel(
        r'extern "C" __global__ void poke(int* p) { p[threadIdx.x] = 1; }', "poke"
    )
    try:
        kernel((1,), (32,), (cp.uint64(0xDEAD0000),))
        cp.cuda.runtime.deviceSynchronize()
        _say("fault: the kernel did not fault")
    except Exception as exc:
        _say(f"fault: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    return 0


def sentinel(argv: list[str]) -> int:
    """`sentinel record` / `sentinel gpu` with only those commands registered."""
    from sentinel.cli import gpu, record

    parser = argparse.ArgumentParser(prog="sentinel")
    sub = parser.add_subparsers(dest="command", required=True)
    gpu.register(sub)
    record.register(sub)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    m = sub.add_parser("matmul")
    m.add_argument("--seconds", type=float, default=90.0)
    m.add_argument("--size", type=int, default=8192)
    o = sub.add_parser("oom")
    o.add_argument("--hold", type=float, default=10.0)
    sub.add_parser("fault")
    s = sub.add_parser("sentinel")
    s.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.what == "matmul":
        return matmul(args.seconds, args.size)
    if args.what == "oom":
        return oom(args.hold)
    if args.what == "fault":
        return fault()
    return sentinel(args.argv)


if __name__ == "__main__":
    sys.exit(main())
