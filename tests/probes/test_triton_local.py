"""LocalTriton's parts that need no running server: install checks, config parsing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from triton_fixtures import MODEL_REPOSITORY

from sentinel.testing.triton_local import (
    LocalTriton,
    TritonNotInstalled,
    find_install,
    free_port,
    read_model_config,
)


def test_missing_wheel_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without nvidia-pytriton the error says what to install."""
    monkeypatch.setitem(sys.modules, "pytriton", None)  # makes the import fail, as if absent
    with pytest.raises(TritonNotInstalled, match="pip install --no-deps nvidia-pytriton"):
        find_install()


def test_missing_repository_is_an_error(tmp_path: Path) -> None:
    """A model repository that does not exist is refused before anything starts."""
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        LocalTriton(tmp_path / "nope")


def test_read_model_config_of_the_example() -> None:
    """The example's config.pbtxt reads as Triton's JSON form with its knobs."""
    config = read_model_config(MODEL_REPOSITORY / "digits")
    assert ("digits", "python", 32, "fp32") == (
        config["name"],
        config["backend"],
        config["max_batch_size"],
        config["parameters"]["precision"]["string_value"],
    )


def test_read_model_config_names_file_and_line(tmp_path: Path) -> None:
    """A malformed config.pbtxt is a ValueError naming the file and the line."""
    bad = tmp_path / "config.pbtxt"
    bad.write_text('name: "m"\nmax_batch_size: lots\n')
    with pytest.raises(ValueError, match=r"config\.pbtxt: 2:\d+ : .*max_batch_size"):
        read_model_config(bad)


@pytest.mark.skipif(
    not Path(sys.prefix, "lib").exists(), reason="needs the virtualenv's lib folder"
)
def test_command_and_environment_follow_the_recipe(tmp_path: Path) -> None:
    """Explicit model control, loopback ports, libpython first and site-packages on the path."""
    try:
        server = LocalTriton(MODEL_REPOSITORY, workdir=tmp_path, http_port=free_port())
    except TritonNotInstalled:
        pytest.skip("nvidia-pytriton is not installed")
    command = server.command()
    env = server.environment()
    assert "--model-control-mode=explicit" in command
    assert "--load-model=*" in command
    assert f"--http-port={server.http_port}" in command
    assert (tmp_path / "backends" / "python" / "triton_python_backend_stub").is_file()
    assert str(server.install.libs) in env["LD_LIBRARY_PATH"].split(":")
    assert env["PYTHONPATH"].split(":")[0] == str(server.install.site_packages)
