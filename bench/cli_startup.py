"""Wall time of the CLI's quick commands, beside a bare interpreter in the same run.

    python bench/cli_startup.py [--runs 5]

Prints the median of N runs of `python -c pass`, `sentinel --version` and
`sentinel config check -c examples/sentinel.yaml`, each as seconds and as a ratio to the bare
interpreter (the ratio carries across machines; the seconds do not). Each command runs as
`python -m sentinel ...` with this interpreter, so the checkout's code is what is timed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS: dict[str, list[str]] = {
    "python -c pass": ["-c", "pass"],
    "sentinel --version": ["-m", "sentinel", "--version"],
    "sentinel config check": ["-m", "sentinel", "config", "check", "-c", "examples/sentinel.yaml"],
}


def median_wall(args: list[str], runs: int) -> float:
    """The median wall time, in seconds, of ``runs`` runs of this interpreter with ``args``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (default 5)")
    runs = parser.parse_args().runs
    base = 0.0
    for name, args in COMMANDS.items():
        wall = median_wall(args, runs)
        base = base or wall
        print(f"{name:<24} {wall:6.3f} s  {wall / base:5.1f}x")


if __name__ == "__main__":
    main()
