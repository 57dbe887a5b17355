"""The shared YAML loader: bounded input, honest problems (FILE:LINE: message)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sentinel.base.yamlsource import MAX_YAML_BYTES, InvalidFile, load_yaml, plain, read_text
from sentinel.config import ApiSettings, load_config
from sentinel.runbook.schema import load_dirs


def _problems(text: str, filename: str = "f.yaml") -> list[str]:
    with pytest.raises(InvalidFile) as info:
        load_yaml(text, filename)
    return [str(p) for p in info.value.problems]


def _alias_bomb(levels: int) -> str:
    """The classic 'billion laughs': each level lists the one before nine times."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(levels):
        name, prev = chr(98 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_fails_fast() -> None:
    """A 2.4 KB alias bomb is refused in well under a second, naming a line."""
    bomb = _alias_bomb(8)
    assert len(bomb) < 2500
    started = time.monotonic()
    [problem] = _problems(bomb)
    assert time.monotonic() - started < 5.0
    assert problem.startswith("f.yaml:")
    assert "aliases" in problem


def test_alias_expansion_is_bounded_even_with_few_aliases() -> None:
    """45 aliases that would expand to half a million values are refused."""
    [problem] = _problems(_alias_bomb(5))
    assert "once aliases are expanded" in problem


def test_alias_that_contains_itself_is_refused() -> None:
    """A recursive alias is a problem, not a RecursionError later."""
    assert ["f.yaml:1: an alias refers to the value that contains it"] == _problems(
        "a: &a [1, *a]\n"
    )


def test_a_few_aliases_and_merge_keys_still_load() -> None:
    """Ordinary anchors, aliases and `<<` merges (overriding a merged key) work."""
    data = load_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\nd: *b\n", "f.yaml")
    assert {"base": {"x": 1, "y": 2}, "c": {"x": 3, "y": 2}, "d": {"x": 1, "y": 2}} == plain(data)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    """300 nested lists (once a RecursionError) are refused past 64 levels."""
    assert ["f.yaml:1: nested deeper than 64 levels"] == _problems("[" * 300 + "]" * 300)


def test_oversized_text_is_refused() -> None:
    """Text past the byte limit is refused before parsing."""
    [problem] = _problems("a: 1\n" + "#" * MAX_YAML_BYTES)
    assert problem.startswith("f.yaml: larger than")


def test_long_list_is_refused_quickly() -> None:
    """A list of 250,000 items under the byte limit stops at the value limit."""
    started = time.monotonic()
    [problem] = _problems("- 1\n" * 250_000)
    assert time.monotonic() - started < 20.0
    assert "more than" in problem
    assert "values" in problem


def test_duplicate_key_names_both_lines() -> None:
    """A key given twice is refused, naming both lines (once the last value won)."""
    text = "api:\n  port: 1\npod: p\napi:\n  bind: 0.0.0.0\n"
    assert ["f.yaml:4: key 'api' given twice (first at line 1)"] == _problems(text)


def test_syntax_error_names_file_and_line() -> None:
    """A YAML syntax error says FILE:LINE, never PyYAML's '<unicode string>' position."""
    [problem] = _problems("a: 1\nb: \x01\n")
    assert problem.startswith("f.yaml:2: invalid YAML:")
    assert "unicode string" not in problem


def test_impossible_date_is_a_problem_at_its_line() -> None:
    """A value PyYAML cannot build (30 February) is a problem, not a ValueError."""
    [problem] = _problems("a: 1\nb: 2020-02-30\n")
    assert problem.startswith("f.yaml:2: invalid value:")


def test_bare_off_is_a_string() -> None:
    """YAML 1.2 booleans: a bare off/yes stays a string; true/false are booleans."""
    assert {"a": "off", "b": "yes", "c": True, "d": False} == plain(
        load_yaml("a: off\nb: yes\nc: true\nd: False\n", "f.yaml")
    )


def test_non_utf8_file_is_a_problem_naming_the_file(tmp_path: Path) -> None:
    """A file that is not UTF-8 is 'FILE: not UTF-8 text'."""
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"pod: caf\xe9\n")
    with pytest.raises(InvalidFile) as info:
        read_text(path)
    assert [f"{path}: not UTF-8 text"] == [str(p) for p in info.value.problems]


# -- the config's values ----------------------------------------------------------------


def _config_problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "sentinel.yaml"
    path.write_text(text)
    with pytest.raises(InvalidFile) as info:
        load_config(path, environ={})
    return [str(p).removeprefix(f"{path}:") for p in info.value.problems]


def test_bool_is_not_a_port(tmp_path: Path) -> None:
    """`api.port: true` is refused (pydantic alone reads it as port 1)."""
    [problem] = _config_problems(tmp_path, "api:\n  port: true\n")
    assert problem.startswith("2: api.port:")
    assert "true/false" in problem


def test_bool_is_not_a_duration(tmp_path: Path) -> None:
    """A float setting refuses true/false too."""
    [problem] = _config_problems(tmp_path, "gpu:\n  interval_s: false\n")
    assert problem.startswith("2: gpu.interval_s:")


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e400"])
def test_non_finite_intervals_are_refused(tmp_path: Path, value: str) -> None:
    """An infinite or NaN timeout/interval is refused."""
    [problem] = _config_problems(tmp_path, f"triton:\n  timeout_s: {value}\n")
    assert problem.startswith("2: triton.timeout_s:")


def test_gpu_source_off_as_documented(tmp_path: Path) -> None:
    """`gpu.source: off`, written bare as the docs show, turns GPU sampling off."""
    path = tmp_path / "sentinel.yaml"
    path.write_text("gpu:\n  source: off\ndry_run: yes\n")
    config = load_config(path, environ={})
    assert ("off", True) == (config.gpu.source, config.dry_run)


def test_gpu_source_off_from_env() -> None:
    """SENTINEL_GPU__SOURCE=off reads as 'off' too."""
    assert "off" == load_config(None, environ={"SENTINEL_GPU__SOURCE": "off"}).gpu.source


def test_duplicate_section_in_config_is_refused(tmp_path: Path) -> None:
    """A second `api:` block no longer silently replaces the first."""
    text = "api:\n  bind: 127.0.0.1\npod: p\napi:\n  bind: 0.0.0.0\n"
    assert ["4: key 'api' given twice (first at line 1)"] == _config_problems(tmp_path, text)


def test_non_utf8_config_is_a_problem(tmp_path: Path) -> None:
    """A non-UTF-8 config is a problem naming the file, not a traceback."""
    path = tmp_path / "sentinel.yaml"
    path.write_bytes(b"pod: caf\xe9\n")
    with pytest.raises(InvalidFile) as info:
        load_config(path, environ={})
    assert [f"{path}: not UTF-8 text"] == [str(p) for p in info.value.problems]


def test_numbers_still_accept_numbers() -> None:
    """Ints and floats given as numbers validate as before."""
    assert 8080 == ApiSettings.model_validate({"port": 8080}).port


def test_deep_file_in_playbook_folder_is_a_problem(tmp_path: Path) -> None:
    """A deeply nested file among the playbooks is reported (its name was once read with
    an unbounded loader: RecursionError in the daemon and in config check)."""
    (tmp_path / "deep.yaml").write_text("[" * 2000 + "]" * 2000)
    found, problems = load_dirs([tmp_path])
    assert ({}, [f"{tmp_path / 'deep.yaml'}:1: nested deeper than 64 levels"]) == (
        found,
        [str(p) for p in problems],
    )
