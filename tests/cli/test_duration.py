"""One duration grammar: config fields, playbooks and command-line flags."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path

import pydantic
import pytest

from sentinel.base.duration import Duration, format_duration, parse_duration
from sentinel.base.yamlsource import InvalidFile
from sentinel.cli import main
from sentinel.cli.config_load import duration_arg
from sentinel.config import Config, load_config
from sentinel.runbook.actions.process import SignalParams
from sentinel.runbook.actions.triton import WaitReadyParams
from sentinel.runbook.pauses import PauseError, parse_for
from sentinel.runbook.schema import load_playbook


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("2d", 172800.0),
        ("1d12h", 129600.0),
        ("1e3", 1000.0),
        (".5", 0.5),
    ],
)
def test_durations_are_read_as_seconds(value: object, seconds: float) -> None:
    """Numbers are seconds; text takes ms, s, m, h and d, alone or combined."""
    assert seconds == parse_duration(value)


@pytest.mark.parametrize("value", ["", "soon", "1x", "h", "-5s", "1.s", "inf", True, None, [1]])
def test_non_durations_are_refused_with_the_accepted_forms(value: object) -> None:
    """Anything else is a ValueError that shows what is accepted."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_the_duration_type_refuses_negative_seconds() -> None:
    """Duration never holds a negative number of seconds, however written."""
    adapter = pydantic.TypeAdapter(Duration)
    assert 5400.0 == adapter.validate_python("1h30m")
    for value in (-1, "-1"):
        with pytest.raises(pydantic.ValidationError, match="greater than or equal to 0"):
            adapter.validate_python(value)


@pytest.mark.parametrize("seconds", [0.5, 1.0, 90.0, 5400.0, 86400.0 + 61.0])
def test_formatted_durations_read_back(seconds: float) -> None:
    """format_duration's text parses back to the same number of seconds."""
    assert seconds == parse_duration(format_duration(seconds))


def test_config_duration_fields_take_text_and_numbers(tmp_path: Path) -> None:
    """`*_s` fields keep their names and numbers, and now also take 2s or 1h30m."""
    path = tmp_path / "sentinel.yaml"
    path.write_text(
        "triton: {timeout_s: 2s}\n"
        "gpu: {interval_s: 500ms}\n"
        "incidents: {resolve_hold_s: 1h30m, refire_window_s: 120}\n"
        "detectors: {memory: {trend_windows_s: [5m, 600]}}\n",
        encoding="utf-8",
    )
    config = load_config(str(path), environ={})
    assert (2.0, 0.5, 5400.0, 120.0) == (
        config.triton.timeout_s,
        config.gpu.interval_s,
        config.incidents.resolve_hold_s,
        config.incidents.refire_window_s,
    )
    assert [300.0, 600.0] == config.detectors.memory.trend_windows_s


def test_environment_overrides_take_durations() -> None:
    """SENTINEL_* overrides of duration fields take the same text."""
    config = load_config(None, environ={"SENTINEL_GPU__INTERVAL_S": "1m30s"})
    assert 90.0 == config.gpu.interval_s


def test_bad_duration_names_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config check` reports a bad duration as FILE:LINE: field: message."""
    path = tmp_path / "sentinel.yaml"
    path.write_text("gpu:\n  interval_s: 5 minutes\n", encoding="utf-8")
    assert 2 == main(["config", "check", str(path)])
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}:2: gpu.interval_s: '5 minutes' is not a duration (e.g. 90s")


def test_field_bounds_still_apply_to_durations(tmp_path: Path) -> None:
    """A duration field's own bound (interval more than 0) holds for text too."""
    path = tmp_path / "sentinel.yaml"
    path.write_text("gpu:\n  interval_s: 0s\n", encoding="utf-8")
    with pytest.raises(InvalidFile) as info:
        load_config(str(path), environ={})
    assert ["gpu.interval_s"] == [p.field for p in info.value.problems]


def test_playbooks_take_the_same_durations(tmp_path: Path) -> None:
    """Playbook durations accept their old forms (30s, 2d, numbers) and now 1h30m."""
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\n"
        "triggers: [{kinds: [latency_spike], for: 1m30s}]\n"
        "approve_within: 1h30m\n"
        "steps:\n"
        "  - {name: w, action: wait, with: {seconds: 1}, timeout: 45}\n",
        encoding="utf-8",
    )
    playbook = load_playbook(path).playbook
    assert (90.0, 5400.0, 45.0) == (
        playbook.triggers[0].for_,
        playbook.approve_within,
        playbook.steps[0].timeout,
    )


def test_action_parameters_take_the_same_durations() -> None:
    """Step parameters in seconds (process.signal, triton.wait_ready) read 3s and 1m too."""
    signal = SignalParams.model_validate({"kill_after_s": "3s", "wait_exit_s": "1m"})
    ready = WaitReadyParams.model_validate({"within_s": "2m", "interval_s": "500ms"})
    assert (3.0, 60.0, 120.0, 0.5) == (
        signal.kill_after_s,
        signal.wait_exit_s,
        ready.within_s,
        ready.interval_s,
    )


def test_flags_take_the_same_durations() -> None:
    """--duration/--for flags read the grammar too, and refuse zero."""
    assert 5400.0 == duration_arg("1h30m")
    assert 7200.0 == parse_for("2h")
    with pytest.raises(argparse.ArgumentTypeError, match="more than 0"):
        duration_arg("0s")
    with pytest.raises(PauseError, match="for: 'two hours'"):
        parse_for("two hours")


def _reads_durations(field: pydantic.fields.FieldInfo) -> bool:
    """The field's type carries Duration's validator (alone, optional, or in a list)."""
    marks = set(map(id, typing.get_args(Duration)[1:]))
    seen = [*field.metadata]
    stack = [field.annotation]
    while stack:
        t = stack.pop()
        seen += getattr(t, "__metadata__", ())
        stack += typing.get_args(t)
    return any(id(m) in marks for m in seen)


def _seconds_fields(model: type[pydantic.BaseModel], path: str) -> dict[str, bool]:
    """Every ``*_s`` field below ``model`` (dotted name) -> whether it reads durations."""
    found: dict[str, bool] = {}
    for name, field in model.model_fields.items():
        if name.endswith("_s"):
            found[f"{path}.{name}"] = _reads_durations(field)
        stack = [field.annotation]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, pydantic.BaseModel):
                found.update(_seconds_fields(t, f"{path}.{name}"))
            stack += typing.get_args(t)
    return found


def test_every_seconds_field_of_the_config_reads_durations() -> None:
    """No ``*_s`` setting anywhere in the config is left on a bare float: all take 90s."""
    fields = _seconds_fields(Config, "config")
    assert len(fields) > 50  # the walk reached the stages' sections
    assert [] == [name for name, ok in fields.items() if not ok]
