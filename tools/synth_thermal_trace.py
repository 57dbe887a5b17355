"""Make the demo's thermal episode from the real H200 matmul trace.

The H200 we recorded never throttled thermally (its cooling kept it at 61 C
under full load), so no real thermal trace exists here. This takes the real
matmul trace and rewrites a middle stretch as a cooling failure would look:
temperature climbing past the slowdown threshold, HW thermal + HW slowdown
clock-event bits set, SM clock falling. Everything else (memory, power, ids,
timing) is the real recording. The output's first line says it is synthesized.

    python tools/synth_thermal_trace.py  # writes tests/data/gpu/h200-thermal-synth.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path

GPU = Path(__file__).resolve().parents[1] / "tests" / "data" / "gpu"
HW_SLOWDOWN, HW_THERMAL = 0x8, 0x40


def main() -> None:
    rows = [json.loads(line) for line in (GPU / "h200-matmul.jsonl").read_text().splitlines()]
    gpu = [r for r in rows if r["type"] == "gpu"][20:80]  # 30 s of the loaded stretch
    out = [
        "# SYNTHESIZED from h200-matmul.jsonl (real H200 recording) by "
        "tools/synth_thermal_trace.py: samples 10-50 rewritten as a cooling failure "
        "(temperature past slowdown, HwThermalSlowdown + HwSlowdown, SM clock halved)."
    ]
    for i, r in enumerate(gpu):
        if 10 <= i < 50:
            r["temperature_c"] = min(93.0, 80.0 + i * 0.6)
            r["clock_event_reasons"] = HW_SLOWDOWN | HW_THERMAL
            r["clock_event_names"] = ["HwSlowdown", "HwThermalSlowdown"]
            r["sm_clock_mhz"] = 990.0
        out.append(json.dumps(r, separators=(",", ":")))
    (GPU / "h200-thermal-synth.jsonl").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
