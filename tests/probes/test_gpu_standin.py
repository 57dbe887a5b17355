"""NvmlStandIn (sentinel.testing.nvml) is kept honest against the real pynvml module."""

from __future__ import annotations

import pynvml
import pytest

from sentinel.testing.nvml import ERROR_CLASSES, NVML_FUNCTIONS, NvmlStandIn


def test_standin_offers_only_real_nvml_functions() -> None:
    """Every function the stand-in answers exists in the real pynvml under that name."""
    missing = [n for n in NVML_FUNCTIONS if not callable(getattr(pynvml, n, None))]
    assert [] == missing
    offered = sorted(n for n in dir(NvmlStandIn) if n.startswith("nvml"))
    assert sorted(NVML_FUNCTIONS) == offered


def test_error_classes_are_enumerated_from_the_module() -> None:
    """The error list holds every NVMLError_* subclass of the installed pynvml."""
    assert len(ERROR_CLASSES) >= 31
    assert all(issubclass(c, pynvml.NVMLError) for c in ERROR_CLASSES)


@pytest.mark.parametrize("error", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_standin_raises_the_injected_error(error: type[Exception]) -> None:
    """An injected failure surfaces as the real pynvml error class."""
    nvml = NvmlStandIn()
    nvml.fail["nvmlDeviceGetPowerUsage"] = error
    with pytest.raises(error):
        nvml.nvmlDeviceGetPowerUsage(nvml.gpus[0])
