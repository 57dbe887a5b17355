"""The demo's generative fault: a streaming language model switched to a plan that drifts.

The demo's tritonserver also serves ``charlm`` (examples/llm_repository), a decoupled
character-level model watched by a streaming canary. The fault deploys its INT4 plan,
whose greedy text departs from the golden one: ``generation_drift`` fires, the
``generation-drift`` playbook reloads it as BF16, and the streaming canary verifies
the golden text streams again.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel.base.assets import shipped
from sentinel.wiring import Sentinel

if TYPE_CHECKING:
    from sentinel.demo.scenario import Demo

EXAMPLES = shipped("examples")  # the installed package's copy, or the checkout's
STREAM_MODEL = "charlm"

DEMO_GENERATION: dict[str, Any] = {
    "ttft_window_s": 3,
    "ttft_min_duration_s": 1,
    "ttft_clear_duration_s": 3,
    "drift_window_s": 3,
    "drift_min_samples": 3,
    "drift_clear_duration_s": 3,
}
"""Fast generation detector settings for the demo (production keeps the defaults)."""


def add_streaming_model(repo: Path) -> None:
    """Copy the streaming model into the demo's model repository."""
    shutil.copytree(
        EXAMPLES / "llm_repository" / STREAM_MODEL,
        repo / STREAM_MODEL,
        ignore=shutil.ignore_patterns("__pycache__"),
    )


def stream_canaries(grpc_url: str) -> list[dict[str, Any]]:
    """The demo's streaming canary: one golden prompt a round, twice a second, over the
    server's gRPC endpoint (streams need gRPC; the rest of the demo speaks HTTP)."""
    return [
        {
            "model": STREAM_MODEL,
            "url": grpc_url,
            "golden_set": str(EXAMPLES / "golden" / "charlm.npz"),
            "interval_s": 0.5,
            "recheck_interval_s": 0.1,
            "max_rechecks": 10,
            "first_token_timeout_s": 2.0,
            "stall_timeout_s": 1.0,
            "timeout_s": 5.0,
        }
    ]


async def generation_drift(demo: Demo, s: Sentinel) -> None:
    """Deploy the INT4 plan; expect generation_drift -> generation-drift -> verified BF16."""
    fault = demo.begin(
        "generation-drift",
        "the streaming language model is redeployed with an INT4 plan (precision=int4)",
        "generation_drift -> generation-drift (BF16) -> verified by the streaming canary",
    )
    u0, c0 = len(demo.tap.updates), len(demo.tap.changes)
    config = await s.triton.model_config(STREAM_MODEL)
    params = {**config.get("parameters", {}), "precision": {"string_value": "int4"}}
    await s.triton.load_model(STREAM_MODEL, {**config, "parameters": params})
    demo.serving(fault)
    if await demo.until(
        "verified BF16 fallback", lambda: demo.verified("generation-drift", u0), 60
    ):
        demo.mark_mitigated(fault)
    served = await s.triton.model_config(STREAM_MODEL)
    precision = served.get("parameters", {}).get("precision", {}).get("string_value")
    await demo.until("incident resolved", lambda: demo.resolved("generation_drift", c0), 30)
    fault.ok = fault.mitigated_at is not None and precision == "bf16"
    fault.note = "" if fault.ok else f"precision is {precision!r}, not bf16"
