"""An application fault: a kernel writes through a bad pointer (the driver logs Xid 31)."""

import time

import cupy as cp

bad = cp.RawKernel(r'extern "C" __global__ void bad(int* p) { p[0] = 1; }', "bad")
print(f"{time.time():.3f} launching a kernel that writes to address 0x10", flush=True)
try:
    bad((1,), (1,), (cp.uint64(0x10),))
    cp.cuda.Device().synchronize()
    print("no error?", flush=True)
except Exception as exc:
    print(f"{time.time():.3f} kernel failed: {type(exc).__name__}: {str(exc)[:160]}", flush=True)
