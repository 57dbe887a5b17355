"""The example model's ``device`` knob, loaded by a real tritonserver (CPU machine)."""

from __future__ import annotations

import importlib.util

import pytest
from triton_fixtures import ModelHandle

pytestmark = pytest.mark.triton


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def test_unknown_device_is_refused_by_name(digits: ModelHandle) -> None:
    """A device other than cpu or cuda fails the load, naming the parameter and value."""
    with pytest.raises(RuntimeError) as caught:
        digits.reconfigure(device="tpu")
    assert "parameter 'device': expected cpu or cuda, got 'tpu'" in str(caught.value)


@pytest.mark.skipif(_cuda_available(), reason="this machine has a CUDA GPU for PyTorch")
def test_cuda_without_a_gpu_fails_the_load_and_says_why(digits: ModelHandle) -> None:
    """device=cuda where the stub's Python has no PyTorch with CUDA is a clear load error."""
    with pytest.raises(RuntimeError) as caught:
        digits.reconfigure(device="cuda")
    message = str(caught.value)
    assert "parameter 'device': cuda" in message
    assert "PyTorch" in message


def test_cpu_device_serves_as_before(digits: ModelHandle) -> None:
    """device=cpu (the default) loads and serves like the on-disk config."""
    digits.reconfigure(device="cpu")
    assert digits.is_ready()
    served = digits.served_config()
    assert served is not None
    assert {"string_value": "cpu"} == served["parameters"]["device"]
