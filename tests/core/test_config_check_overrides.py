"""`sentinel config check` also checks playbook overrides against their playbooks."""

from __future__ import annotations

from pathlib import Path

from sentinel.cli.config_cmd import check

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def _config(tmp_path: Path, overrides: str) -> Path:
    path = tmp_path / "sentinel.yaml"
    path.write_text(f"pod: p\nplaybooks:\n  dirs: [{PLAYBOOKS}]\n  overrides:\n{overrides}")
    return path


def test_override_that_breaks_a_playbook_is_reported_at_its_config_line(tmp_path: Path) -> None:
    """A bad override value is FILE:LINE of the override, naming the playbook file."""
    path = _config(tmp_path, "    restart-server:\n      guards:\n        cooldown: soon\n")
    [problem] = [str(p) for p in check(str(path))]
    assert problem.startswith(f"{path}:7: playbooks.overrides.restart-server.guards.cooldown: ")
    assert problem.endswith(f"(in {PLAYBOOKS / 'restart-server.yaml'})")


def test_override_of_missing_step_or_playbook_is_reported(tmp_path: Path) -> None:
    """Naming a step or a playbook that does not exist is a problem at its line."""
    path = _config(
        tmp_path,
        "    reduce-batch-size:\n      steps:\n        nope: {timeout: 1s}\n    ghost: {}\n",
    )
    lines = sorted(str(p).split(": ")[0] + ": " + str(p).split(": ")[1] for p in check(str(path)))
    assert [
        f"{path}:7: playbooks.overrides.reduce-batch-size.steps.nope",
        f"{path}:8: playbooks.overrides.ghost",
    ] == lines


def test_good_override_passes(tmp_path: Path) -> None:
    """An override that keeps its playbook valid is no problem."""
    path = _config(tmp_path, "    restart-server:\n      guards:\n        cooldown: 5m\n")
    assert [] == check(str(path))


def test_step_patch_that_is_not_a_mapping_is_a_problem(tmp_path: Path) -> None:
    """`steps: {halve_batch: true}` is a problem at its line (it once raised
    AttributeError, in config check and in the daemon's playbook load)."""
    path = _config(tmp_path, "    reduce-batch-size:\n      steps:\n        halve_batch: true\n")
    [problem] = [str(p) for p in check(str(path))]
    assert problem.startswith(
        f"{path}:7: playbooks.overrides.reduce-batch-size.steps.halve_batch: expected a mapping"
    )
