"""sentinel: a sidecar that watches Triton Inference Server and its GPUs.

The flow runs one way: observe (probes) -> judge (detect) -> remember (incidents)
-> act (runbook) -> tell (notify). Only adapters do I/O; time is injected.
"""

__version__ = "0.1.0"
