"""When the NVML sampler reads a field that changes rarely, and what it carries in between.

Memory, utilization, clocks, power, temperature and clock-event reasons are read on
every sample. ECC errors, remapped rows, the PCIe replay counter, the power limit and
the process list change rarely and some cost far more to read (the PCIe replay counter
took ~190 us of CPU a call on an H200, the fast fields ~25 us together), so they are
read every ``gpu.slow_interval_s`` and the samples in between carry the last value. A
read that failed (None) is due again on the next sample, and the processes are also
read at once when memory used has moved (``gpu.processes_on_memory_change``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROCESSES = "processes"


@dataclass
class SlowFields:
    """The slow fields of one GPU: when each was last read and what it answered."""

    values: dict[str, Any] = field(default_factory=dict)
    read_at: dict[str, float] = field(default_factory=dict)
    """Monotonic time of each field's last successful read."""
    processes_used: int | None = None
    """Memory used (bytes) when the processes were last read."""

    def due(self, key: str, now: float, every_s: float, tick_s: float) -> bool:
        """Whether ``key`` is to be read on the sample taken at ``now``.

        Half a tick of slack, so a field due every 10 ticks is read every 10 ticks even
        when a tick runs a little early.
        """
        at = self.read_at.get(key)
        return at is None or now - at >= every_s - tick_s / 2

    def read(
        self, key: str, now: float, every_s: float, tick_s: float, fetch: Callable[[], Any]
    ) -> Any:
        """The field's value: fetched when due (kept unless it failed), else the last one."""
        if self.due(key, now, every_s, tick_s):
            self.keep(key, fetch(), now)
        return self.values.get(key)

    def keep(self, key: str, value: Any, now: float) -> None:
        """Remember a read; a failed one (None) leaves the field due on the next sample."""
        self.values[key] = value
        if value is None:
            self.read_at.pop(key, None)
        else:
            self.read_at[key] = now

    def memory_moved(self, used: int | None, total: int | None, share: float) -> bool:
        """Memory used moved by more than ``share`` of the total since the processes'
        last read (unknown memory never counts as moved)."""
        if used is None or self.processes_used is None or not total:
            return False
        return abs(used - self.processes_used) > share * total

    def forget(self) -> None:
        """Everything is due again (the GPU came back, its handles are new)."""
        self.values.clear()
        self.read_at.clear()
        self.processes_used = None
