"""`sentinel golden capture` and BYTES/BF16 canaries against the real test bed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streaming_golden import GOLDEN_CHARLM, GOLDEN_SCORE, golden_path
from triton_fixtures import make_adapter

from sentinel.cli import main
from sentinel.probes.canary import CanaryProbe
from sentinel.probes.settings import CanarySettings
from sentinel.testing.triton_local import LocalTriton

pytestmark = pytest.mark.triton


def same_arrays(expected: Path, actual: Path) -> None:
    with np.load(expected) as want, np.load(actual) as got:
        assert sorted(want.files) == sorted(got.files)
        for key in want.files:
            assert want[key].dtype == got[key].dtype, key
            np.testing.assert_array_equal(want[key], got[key], err_msg=key)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_capture_of_the_tensor_model_reproduces_the_committed_golden_set(
    llm_server: LocalTriton, tmp_path: Path, protocol: str
) -> None:
    """BYTES and BF16 outputs captured over either protocol equal the committed golden set."""
    out = tmp_path / "score.npz"
    url = llm_server.grpc_url if protocol == "grpc" else llm_server.http_url
    inputs = golden_path("charlm_score_inputs.json")
    args = ["--model", "charlm_score", "--inputs", str(inputs), "--out", str(out)]
    assert 0 == main(["golden", "capture", *args, "--url", url, "--protocol", protocol])
    same_arrays(GOLDEN_SCORE, out)


def test_capture_of_the_streaming_model_reproduces_the_committed_golden_set(
    llm_server: LocalTriton, tmp_path: Path
) -> None:
    """Each prompt's whole streamed text and token count equal the committed golden set."""
    out = tmp_path / "charlm.npz"
    inputs = golden_path("charlm_prompts.json")
    args = ["--model", "charlm", "--inputs", str(inputs), "--out", str(out)]
    assert 0 == main(
        ["golden", "capture", *args, "--url", llm_server.grpc_url, "--protocol", "grpc"]
    )
    same_arrays(GOLDEN_CHARLM, out)


def test_capture_of_a_streaming_model_over_http_needs_a_grpc_url(
    llm_server: LocalTriton, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Streams need gRPC: over HTTP alone the capture is refused with the reason (exit 2)."""
    inputs = golden_path("charlm_prompts.json")
    args = ["--model", "charlm", "--inputs", str(inputs), "--out", str(tmp_path / "x.npz")]
    assert 2 == main(
        ["golden", "capture", *args, "--url", llm_server.http_url, "--protocol", "http"]
    )
    assert "give a gRPC url" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("output", ["CONTINUATION", "LOGPROB"])
async def test_tensor_canary_agrees_on_bytes_and_bf16_outputs(
    llm_server: LocalTriton, protocol: str, output: str
) -> None:
    """The tensor canary sends BYTES and BF16 inputs and agrees exactly on either output."""
    adapter = make_adapter(llm_server, protocol)
    settings = CanarySettings(
        model="charlm_score", golden_set=GOLDEN_SCORE, batch_sizes=[1, 4], output=output
    )
    try:
        results = await CanaryProbe(adapter, settings).check()
    finally:
        await adapter.close()
    assert [1, 4] == [r.batch_size for r in results]
    for r in results:
        assert "ok" == r.outcome, r.error
        assert r.agreement is not None
        assert (0.0, 1.0) == (r.agreement.max_abs_error, r.agreement.top1)


def test_inputs_the_model_does_not_take_are_bad_input(
    llm_server: LocalTriton, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An inputs file naming a tensor the model lacks exits 2 and names the tensor."""
    inputs = tmp_path / "inputs.json"
    inputs.write_text('{"QUESTION": [["hello"]]}')
    args = ["--model", "charlm", "--inputs", str(inputs), "--out", str(tmp_path / "x.npz")]
    assert 2 == main(
        ["golden", "capture", *args, "--url", llm_server.grpc_url, "--protocol", "grpc"]
    )
    assert "QUESTION is not an input of charlm" in capsys.readouterr().err
