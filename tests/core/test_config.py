"""The config file: validation, line-numbered problems, env overrides, secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.base.yamlsource import InvalidFile
from sentinel.config import load_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "sentinel.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sentinel.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(InvalidFile) as info:
        load_config(path, environ={})
    return [str(p) for p in info.value.problems]


def test_example_config_is_valid() -> None:
    """The shipped, commented example config validates."""
    config = load_config(EXAMPLE, environ={})
    assert config.canaries, "the example watches at least one model"


def test_wrong_type_names_file_line_and_field(tmp_path: Path) -> None:
    """A wrong type is reported as FILE:LINE: dotted.field: message."""
    path = write(tmp_path, "pod: p\ntriton:\n  url: h:1\n  timeout_s: fast\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:4: triton.timeout_s: ")


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    """An unknown key is an error with a 'did you mean'."""
    path = write(
        tmp_path, "canaries:\n  - model: digits\n    golden_set: g.npz\n    batch_sizs: [1]\n"
    )
    expected = f"{path}:4: canaries.0.batch_sizs: unknown key (did you mean 'batch_sizes'?)"
    assert [expected] == problems(path)


def test_removed_tensorrt_canaries_say_what_to_do_instead(tmp_path: Path) -> None:
    """tensorrt_canaries, no longer a setting, is an error naming its line and saying that
    TensorRT models are canaried through Triton."""
    path = write(tmp_path, "pod: p\ntensorrt_canaries:\n  - engine: m.plan\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:2: tensorrt_canaries: no longer a setting: ")
    assert "TensorRT models are canaried through Triton" in problem


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    """Broken YAML syntax is reported with its line."""
    path = write(tmp_path, "pod: p\ntriton:\n  url: [unclosed\n")
    [problem] = problems(path)
    assert problem.startswith(f"{path}:")
    assert "invalid YAML" in problem


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    """A config path that does not exist is a clear problem."""
    [problem] = problems(tmp_path / "nope.yaml")
    assert "cannot read" in problem


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    """golden_set and state_dir are relative to the file that names them."""
    path = write(tmp_path, "state_dir: st\ncanaries:\n  - model: m\n    golden_set: g.npz\n")
    config = load_config(path, environ={})
    assert (tmp_path / "st", tmp_path / "g.npz") == (
        config.state_dir,
        config.canaries[0].golden_set,
    )


def test_env_overrides_nested_fields(tmp_path: Path) -> None:
    """SENTINEL_A__B overrides a nested field; values parse as YAML."""
    path = write(tmp_path, "triton:\n  url: h:1\n")
    config = load_config(
        path, environ={"SENTINEL_TRITON__URL": "other:8001", "SENTINEL_GPU__INTERVAL_S": "2.5"}
    )
    assert ("other:8001", 2.5) == (config.triton.url, config.gpu.interval_s)


def test_secret_from_env_stays_a_string_and_is_hidden() -> None:
    """A numeric-looking token from env is kept verbatim and hidden in dumps."""
    config = load_config(None, environ={"SENTINEL_API__TOKEN": "0123"})
    assert "0123" == config.api.bearer_token()
    assert "0123" not in config.model_dump_json()


def test_secret_from_file(tmp_path: Path) -> None:
    """*_file fields read the secret from a file (e.g. a mounted Secret)."""
    (tmp_path / "tok").write_text("from-file\n")
    path = write(tmp_path, "api:\n  token_file: tok\n")
    assert "from-file" == load_config(path, environ={}).api.bearer_token()


def test_bad_env_override_is_reported_as_env(tmp_path: Path) -> None:
    """A bad value from the environment names the env, not a file line."""
    with pytest.raises(InvalidFile) as info:
        load_config(None, environ={"SENTINEL_GPU__INTERVAL_S": "soon"})
    assert ["env:0: gpu.interval_s"] == [str(p).split(": '")[0] for p in info.value.problems]


def test_config_check_command_exit_codes(tmp_path: Path) -> None:
    """`sentinel config check` exits 0 on a valid file and 2 with the problem line."""
    bad = write(tmp_path, "pod: p\nmetrics:\n  port: many\n")
    ok = subprocess.run(
        [sys.executable, "-m", "sentinel", "config", "check", str(EXAMPLE)],
        capture_output=True,
        text=True,
    )
    fail = subprocess.run(
        [sys.executable, "-m", "sentinel", "config", "check", str(bad)],
        capture_output=True,
        text=True,
    )
    assert (0, 2) == (ok.returncode, fail.returncode)
    assert f"{bad}:3: metrics.port: " in fail.stderr
