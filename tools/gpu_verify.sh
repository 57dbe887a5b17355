#!/usr/bin/env bash
# The real-GPU verification run (docs/gpu-verification.md): records GPU traces
# while idle, under a matmul load, while memory fills to a real CUDA OOM, and
# around an application fault (Xid), into OUT (default ./gpu-out).
# Usage: tools/gpu_verify.sh [OUT]   (carry .whl when pydantic is missing)
set -u
OUT=${1:-${OUT:-gpu-out}}
mkdir -p "$OUT"
LOG="$OUT/run.log"
export PYTHONUNBUFFERED=1 PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
PY=${PY:-python3}
rec() {  # rec NAME DURATION INTERVAL
  "$PY" tools/gpu_load.py sentinel record --out "$OUT/$1.jsonl" --duration "$2" --interval "$3"
}
{
  echo "== env"; date -u; uname -r
  nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,temperature.gpu --format=csv
  "$PY" -c 'import pynvml, torch; print("nvidia-ml-py", pynvml.__file__, "torch", torch.__version__)'
  echo "== sentinel gpu"; "$PY" tools/gpu_load.py sentinel gpu; echo "rc=$?"
  "$PY" tools/gpu_load.py sentinel gpu --json > "$OUT/gpu.json"; echo "rc=$?"
  echo "== idle"; rec idle 45s 1
  echo "== load"
  "$PY" tools/gpu_load.py matmul --seconds 85 & LOAD=$!
  ( sleep 60; echo "-- nvidia-smi at 60 s of load"; nvidia-smi -q -d PERFORMANCE,POWER | sed -n '8,45p' ) &
  rec load 80s 0.5; wait $LOAD
  echo "== oom"
  ( sleep 8; "$PY" tools/gpu_load.py oom --hold 12 ) & FILL=$!
  rec oom 45s 0.5; wait $FILL
  echo "== xid"
  ( sleep 6; "$PY" tools/gpu_load.py fault ) & FAULT=$!
  rec xid 25s 0.5; wait $FAULT
  (dmesg 2>/dev/null || true) | grep -i xid | tail -5
  echo "== done"; date -u
} 2>&1 | tee "$LOG"
