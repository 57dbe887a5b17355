"""CPU per call of each NVML query sentinel's GPU sampler makes, on a real GPU.

Needs the NVIDIA driver and ``nvidia-ml-py`` (``pynvml``) only, nothing of sentinel, so it
runs as is on a GPU machine:

    python bench/nvml_cost.py            # GPU 0, 300 calls per query
    python bench/nvml_cost.py --gpu 3 --calls 1000

Prints, per query, the median wall time and the mean CPU time of one call, then what
one GPU costs a second with every field read each second and with the slow fields
(``gpu.slow_interval_s``) read every 10 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

FAST = (
    "count",
    "memory_v2",
    "utilization",
    "clock_event_reasons",
    "power",
    "temperature",
    "sm_clock",
)
SLOW = ("remapped_rows", "power_limit", "ecc_uncorrected", "pcie_replay", "processes")


def queries(n: Any, h: Any) -> dict[str, Callable[[], Any]]:
    """The sampler's queries (sentinel/probes/gpu.py), by the field names it uses."""
    return {
        "count": lambda: n.nvmlDeviceGetCount(),
        "memory_v2": lambda: n.nvmlDeviceGetMemoryInfo(h, 0x02000028),
        "utilization": lambda: n.nvmlDeviceGetUtilizationRates(h),
        "clock_event_reasons": lambda: n.nvmlDeviceGetCurrentClocksEventReasons(h),
        "power": lambda: n.nvmlDeviceGetPowerUsage(h),
        "temperature": lambda: n.nvmlDeviceGetTemperature(h, 0),
        "sm_clock": lambda: n.nvmlDeviceGetClockInfo(h, 1),
        "remapped_rows": lambda: n.nvmlDeviceGetRemappedRows(h),
        "power_limit": lambda: n.nvmlDeviceGetEnforcedPowerLimit(h),
        "ecc_uncorrected": lambda: n.nvmlDeviceGetTotalEccErrors(h, 1, 0),
        "pcie_replay": lambda: n.nvmlDeviceGetPcieReplayCounter(h),
        "processes": lambda: n.nvmlDeviceGetComputeRunningProcesses(h),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    import pynvml as n

    n.nvmlInit()
    h = n.nvmlDeviceGetHandleByIndex(args.gpu)
    print(f"{n.nvmlDeviceGetName(h)}, driver {n.nvmlSystemGetDriverVersion()}")
    cpu_us: dict[str, float] = {}
    for name, call in queries(n, h).items():
        try:
            call()
        except n.NVMLError as exc:
            print(f"{name:20s} {type(exc).__name__}")
            continue
        walls, cpus = [], []
        for _ in range(args.calls):
            w0, c0 = time.perf_counter(), time.process_time()
            call()
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        cpu_us[name] = 1e6 * sum(cpus) / len(cpus)
        wall = 1e6 * statistics.median(walls)
        print(f"{name:20s} median wall {wall:8.1f} us   mean CPU {cpu_us[name]:8.1f} us")
    fast = sum(cpu_us.get(k, 0.0) for k in FAST)
    slow = sum(cpu_us.get(k, 0.0) for k in SLOW)
    print(
        f"one GPU, CPU a second: every field each second {fast + slow:.0f} us; "
        f"slow fields every 10 s {fast + slow / 10:.0f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
