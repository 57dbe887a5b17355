"""Fill the GPU's memory with plain allocations (torch), hold, then exit (memory freed)."""

import sys
import time

import torch

hold_s = float(sys.argv[1])
blocks = []
for size in (1 << 30, 64 << 20, 4 << 20):
    while True:
        try:
            blocks.append(torch.empty(size, dtype=torch.uint8, device="cuda"))
        except torch.OutOfMemoryError:
            break
free, total = torch.cuda.mem_get_info()
print(
    f"{time.time():.3f} filled: {len(blocks)} blocks, "
    f"free {free / 2**20:.0f} MiB of {total / 2**20:.0f} MiB",
    flush=True,
)
# an allocation that fails now, as a model's would
try:
    torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
except torch.OutOfMemoryError as exc:
    print(f"{time.time():.3f} allocation failed: {str(exc)[:120]}", flush=True)
time.sleep(hold_s)
print(f"{time.time():.3f} freeing (exit)", flush=True)
