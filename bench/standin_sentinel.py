"""`sentinel run` with N stand-in GPUs: ``sentinel.testing``'s NVML stand-in as ``pynvml``.

For measuring the NVML path on a machine without a GPU (bench/overhead.py). The
stand-in answers every NVML call sentinel makes from scripted values; nothing
else differs from ``sentinel run``: the same CLI, config, probes and threads.

    python bench/standin_sentinel.py 8 run --config sentinel.yaml
"""

from __future__ import annotations

import collections
import sys


def main(argv: list[str]) -> int:
    gpus = int(argv[0])
    from sentinel.testing.nvml import GpuScript, NvmlStandIn

    nvml = NvmlStandIn([GpuScript(uuid=f"GPU-standin-{i:04d}") for i in range(gpus)])
    # the stand-in logs every call for tests; bounded here so a long run does not grow
    nvml.calls = collections.deque(maxlen=1024)  # type: ignore[assignment]
    sys.modules["pynvml"] = nvml  # type: ignore[assignment]  # what `import pynvml` returns

    from sentinel.cli import main as sentinel_main

    return sentinel_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
