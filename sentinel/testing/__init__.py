"""Fakes for testing your own sentinel playbooks and configs (like ``structlog.testing``).

Everything here is what sentinel's own tests use:

- :class:`FakeClock` (from :mod:`sentinel.base.clock`): time moves only when the
  test says so, so hours of incident timeline run in milliseconds.
- :mod:`sentinel.testing.builders`: ``canary``, ``gpu``, ``health`` samples and
  ``finding`` / ``cleared`` judgements with plausible defaults, and ``T0``.
- :mod:`sentinel.testing.nvml`: :class:`NvmlStandIn`, a stand-in for ``pynvml``
  with scripted GPUs (:class:`GpuScript`), injected errors and a call log.
- :class:`RecordingSink` and :class:`RecordingTeller` (:mod:`sentinel.testing.sinks`):
  where a probe sends samples and a stage tells people, keeping what they got.
- :mod:`sentinel.testing.notifiers`: loopback servers speaking the Slack,
  PagerDuty and Alertmanager wire formats (needs ``aiohttp``, a sentinel
  dependency; imported on first use).
- :mod:`sentinel.testing.triton_local`: a real local tritonserver from the
  ``nvidia-pytriton`` wheel (the ``demo`` extra; import the submodule).
- :mod:`sentinel.testing.load`: :class:`~sentinel.testing.load.LoadGenerator`, real
  traffic (N requests a second over HTTP) to a model of such a server (import the
  submodule).

Importing this package stays light: the notifier servers are loaded on first
access, and nothing here imports tritonclient, pytriton or numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sentinel.base.clock import FakeClock
from sentinel.testing.builders import T0, canary, cleared, finding, gpu, health
from sentinel.testing.nvml import GpuScript, NvmlStandIn
from sentinel.testing.sinks import RecordingSink, RecordingTeller

if TYPE_CHECKING:
    from sentinel.testing.notifiers import (
        AlertmanagerServer,
        Failure,
        PagerDutyServer,
        SlackServer,
        drain,
    )

_NOTIFIERS = frozenset({"AlertmanagerServer", "Failure", "PagerDutyServer", "SlackServer", "drain"})

__all__ = [
    "T0",
    "AlertmanagerServer",
    "Failure",
    "FakeClock",
    "GpuScript",
    "NvmlStandIn",
    "PagerDutyServer",
    "RecordingSink",
    "RecordingTeller",
    "SlackServer",
    "canary",
    "cleared",
    "drain",
    "finding",
    "gpu",
    "health",
]


def __getattr__(name: str) -> Any:
    # aiohttp is loaded only by tests that start a notifier server
    if name in _NOTIFIERS:
        from sentinel.testing import notifiers

        return getattr(notifiers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
