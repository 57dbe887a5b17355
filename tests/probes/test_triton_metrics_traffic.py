"""Triton's traffic series as the health probe parses them (text seen on tritonserver 2.51)."""

from __future__ import annotations

import pytest

from sentinel.probes.triton_health import MAX_MODELS, MAX_QUANTILES, parse_triton_metrics

# as tritonserver 2.51 wrote it with --metrics-config=summary_latencies=true (trimmed)
SEEN = """\
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="digits",version="1"} 20
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{model="digits",reason="BACKEND",version="1"} 2
# TYPE nv_inference_count counter
nv_inference_count{model="digits",version="1"} 40
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{model="digits",version="1"} 10
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{model="digits",version="1"} 30868
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{model="digits",version="1"} 610
# TYPE nv_inference_compute_input_duration_us counter
nv_inference_compute_input_duration_us{model="digits",version="1"} 375
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{model="digits",version="1"} 29226
# TYPE nv_inference_compute_output_duration_us counter
nv_inference_compute_output_duration_us{model="digits",version="1"} 547
# TYPE nv_inference_request_summary_us summary
nv_inference_request_summary_us_count{model="digits",version="1"} 20
nv_inference_request_summary_us_sum{model="digits",version="1"} 30868
nv_inference_request_summary_us{model="digits",version="1",quantile="0.5"} 193
nv_inference_request_summary_us{model="digits",version="1",quantile="0.99"} 303
nv_inference_request_summary_us{model="digits",version="2",quantile="0.99"} 900
nv_inference_request_summary_us{model="other",version="1",quantile="0.99"} Nan
"""


def test_counters_and_quantiles_of_a_model() -> None:
    """Counts, compute times and the worst version's quantiles are read; NaN is dropped."""
    c = parse_triton_metrics(SEEN)["digits"]
    assert (40.0, 10.0) == (c.inference_count, c.exec_count)
    assert (375.0, 29226.0, 547.0) == (c.compute_input_us, c.compute_infer_us, c.compute_output_us)
    assert {"0.5": 193.0, "0.99": 900.0} == c.request_quantiles_us
    assert "other" not in parse_triton_metrics(SEEN)


def test_older_server_without_the_new_series_leaves_them_none() -> None:
    """A scrape without counts or compute series leaves those fields None (not 0)."""
    text = 'nv_inference_request_success{model="m",version="1"} 5\n'
    c = parse_triton_metrics(text)["m"]
    assert (5.0, None, None, {}) == (
        c.success,
        c.exec_count,
        c.compute_infer_us,
        c.request_quantiles_us,
    )


def test_odd_quantile_labels_are_ignored_and_bounded() -> None:
    """Quantile labels that are not numbers in (0, 1) are skipped; at most MAX_QUANTILES kept."""
    lines = [
        f'nv_inference_request_summary_us{{model="m",quantile="{q}"}} 1'
        for q in ["x", "1.5", "-0.1", *(f"0.{i:03d}" for i in range(1, 40))]
    ]
    c = parse_triton_metrics("\n".join(lines) + "\n")["m"]
    assert MAX_QUANTILES == len(c.request_quantiles_us)


def test_models_kept_from_one_scrape_are_bounded() -> None:
    """A server reporting a flood of models is cut at MAX_MODELS."""
    text = "".join(
        f'nv_inference_request_success{{model="m{i}",version="1"}} 1\n'
        for i in range(MAX_MODELS + 50)
    )
    assert MAX_MODELS == len(parse_triton_metrics(text))


@pytest.mark.parametrize("garbage", ["nv_inference_count{model=", "}{\n", "a b c d\n"])
def test_garbage_raises_value_error_the_probe_catches(garbage: str) -> None:
    """Text that is not Prometheus exposition raises ValueError (the probe logs it, once)."""
    with pytest.raises(ValueError, match=r"not a Prometheus sample|could not convert|bad labels"):
        parse_triton_metrics(garbage)
