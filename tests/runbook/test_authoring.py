"""Authoring mistakes `playbook validate` refuses, each with file, line and field: trigger
kinds no detector raises, template variables the context lacks, `with:` parameters the
action does not declare or that break its types; and the defined fallback of
``target.model`` for incidents that name no model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from runbook_standins import Bed, drive

from sentinel.base.yamlsource import InvalidFile
from sentinel.runbook.actions.base import param
from sentinel.runbook.context import build_context, synthetic_incident
from sentinel.runbook.errors import ActionError
from sentinel.runbook.schema import LoadedPlaybook, load_playbook
from sentinel.runbook.templating import render
from sentinel.runbook.variables import CAUSE_FIELDS, DOCS, variables
from sentinel.vocabulary.findings import Severity, Subject
from sentinel.vocabulary.incidents import Incident, IncidentStatus

Loader = Callable[[str], LoadedPlaybook]

BASE = """\
name: t
triggers:
  - kinds: [latency_spike]
params:
  limit: "4"
steps:
  - name: diagnose
    action: diagnostics.capture
    with:
      model: "{{ target.model }}"
  - name: restart
    if: "not steps.diagnose.verified"
    action: process.signal
    with:
      signal: SIGTERM
      wait_exit_s: 30
    rollback: none
"""


def problems(tmp_path: Path, text: str) -> list[str]:
    """The problems validation reports, as 'LINE: field: message' (file name dropped)."""
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidFile) as err:
        load_playbook(path)
    return [str(p).removeprefix(f"{path}:") for p in err.value.problems]


def line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_the_base_playbook_is_valid(tmp_path: Path) -> None:
    """The text the other cases break is itself valid (so each case fails for its reason)."""
    path = tmp_path / "p.yaml"
    path.write_text(BASE, encoding="utf-8")
    assert "t" == load_playbook(path).playbook.name


def test_unknown_trigger_kind_suggests_the_detectors_kind(tmp_path: Path) -> None:
    """`latency_spik` is refused at its line: no detector raises it, did you mean latency_spike."""
    text = BASE.replace("[latency_spike]", "[latency_spik]")
    [problem] = problems(tmp_path, text)
    assert problem.startswith(f"{line_of(text, 'latency_spik')}: triggers.0.kinds.0: ")
    assert "no detector raises 'latency_spik' (did you mean 'latency_spike'?)" in problem


def test_misspelt_template_variable_is_refused(tmp_path: Path) -> None:
    """`{{ target.modle }}` fails validation at its line, suggesting target.model."""
    text = BASE.replace("target.model", "target.modle")
    expected = (
        f"{line_of(text, 'modle')}: steps.0.with.model: "
        "target.modle: no such field (did you mean 'model'?)"
    )
    assert [expected] == problems(tmp_path, text)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("target.model", "cuase.reasons", "unknown variable 'cuase' (did you mean 'cause'?)"),
        ("target.model", "cause.foreign", "cause.foreign: no such field (did you mean"),
        ("target.model", "params.limt", "params.limt: not declared under params: (did you mean"),
        ("steps.diagnose.verified", "steps.diagnos.verified", "no step of that name (did you"),
        ("steps.diagnose.verified", "steps.diagnose.verifed", "did you mean 'verified'?"),
    ],
)
def test_template_paths_are_checked_against_the_context(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    """Unknown names, fields, params and step names in templates and conditions are refused."""
    text = BASE.replace(old, new)
    [problem] = problems(tmp_path, text)
    assert problem.startswith(f"{line_of(text, new)}: ")
    assert message in problem


def test_signal_and_negative_wait_are_refused_with_their_lines(tmp_path: Path) -> None:
    """`signal: NOT_A_SIGNAL` and `wait_exit_s: -5` are refused by process.signal's own schema."""
    text = BASE.replace("SIGTERM", "NOT_A_SIGNAL").replace("wait_exit_s: 30", "wait_exit_s: -5")
    assert [
        f"{line_of(text, 'NOT_A_SIGNAL')}: steps.1.with.signal: process.signal: "
        "unknown signal 'NOT_A_SIGNAL' (e.g. SIGTERM, SIGINT, SIGKILL)",
        f"{line_of(text, 'wait_exit_s')}: steps.1.with.wait_exit_s: process.signal: "
        "Input should be greater than or equal to 0",
    ] == problems(tmp_path, text)


def test_unknown_parameter_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    """A misspelt parameter (kill_after instead of kill_after_s) is not silently ignored."""
    text = BASE.replace("wait_exit_s: 30", "kill_after: 30")
    assert [
        f"{line_of(text, 'kill_after')}: steps.1.with.kill_after: process.signal: "
        "unknown parameter (did you mean 'kill_after_s'?)"
    ] == problems(tmp_path, text)


def test_nested_patch_fields_and_missing_parameters_are_checked(tmp_path: Path) -> None:
    """triton.load_model's patch is typed too; a required parameter left out is named."""
    text = BASE + (
        "  - name: halve\n    action: triton.load_model\n    with: {patch: {max_batch: 4}}\n"
    )
    line = line_of(text, "max_batch")
    assert [
        f"{line}: steps.2.with.model: triton.load_model: required parameter is missing",
        f"{line}: steps.2.with.patch.max_batch: triton.load_model: "
        "unknown parameter (did you mean 'max_batch_size'?)",
    ] == sorted(problems(tmp_path, text))


def test_templated_values_are_typed_only_when_rendered(tmp_path: Path) -> None:
    """A template where a number is expected passes validation (its value is known at run time)."""
    path = tmp_path / "p.yaml"
    path.write_text(BASE.replace("wait_exit_s: 30", 'wait_exit_s: "{{ params.limit }}"'), "utf-8")
    assert "{{ params.limit }}" == load_playbook(path).playbook.steps[1].with_["wait_exit_s"]


def test_rollback_templates_may_read_the_steps_output(tmp_path: Path) -> None:
    """A rollback's with: sees `output` (the step's own); its parameters are checked too."""
    text = BASE.replace(
        "    rollback: none\n",
        "    rollback: {action: notify.slack, with: {text: 'pid {{ output.pid }}', txt: x}}\n",
    )
    assert [
        f"{line_of(text, 'rollback')}: steps.1.rollback.with.txt: notify.slack: "
        "unknown parameter (did you mean 'text'?)"
    ] == problems(tmp_path, text)


def test_every_context_variable_and_cause_field_is_documented() -> None:
    """A variable added to the run context without a line of docs fails here."""
    names = set(variables())
    assert names == set(DOCS)
    assert set(CAUSE_FIELDS) == set(variables()["cause"].fields or {})


def _gpu_only_incident(now: float) -> Incident:
    subject = Subject(gpu_uuid="GPU-1")
    return Incident(
        id="inc-gpu",
        key=f"pod-a/{subject.key()}/gpu_oom",
        kind="gpu_oom",
        severity=Severity.CRITICAL,
        subject=subject,
        status=IncidentStatus.FIRING,
        summary="gpu_oom on GPU-1",
        started_at=now,
        detected_at=now,
        updated_at=now,
    )


def test_target_model_renders_empty_for_an_incident_without_a_model() -> None:
    """The defined fallback: `{{ target.model }}` is '' (not an error) when no model is named."""
    incident = synthetic_incident("pod-a", {}, "manual", 0.0)
    context = build_context(
        incident=incident,
        target={},
        params={},
        facts=None,
        server_names=[],
        config={},
        now=0.0,
        dry_run=True,
    )
    assert "" == render("{{ target.model }}", context)


def test_an_action_needing_a_model_refuses_the_empty_name() -> None:
    """A required name rendered empty is an action error, not a call with ''."""
    with pytest.raises(ActionError, match=r"with\.model: required, but empty"):
        param({"model": ""}, "model", str)


async def test_gpu_oom_on_a_gpu_only_incident_diagnoses_then_pages(
    bed: Bed, shipped: Loader
) -> None:
    """The shipped gpu-oom no longer fails its first step on an incident naming only a GPU:
    it diagnoses, the rung that needs a model fails on the empty name, and it pages."""
    engine = bed.engine([shipped("gpu-oom")])
    [result] = await drive(bed.clock, engine.consider(_gpu_only_incident(bed.clock.now())))
    assert [
        ("diagnose", "succeeded"),
        ("page_foreign", "skipped"),
        ("reduce_batch", "skipped"),
        ("to_fp16", "failed"),
        ("page", "succeeded"),
    ] == [(s["name"], s["status"]) for s in result.steps]
