"""The template sandbox: native values, strict undefined, no escape, no mutation."""

from __future__ import annotations

import pytest

from sentinel.runbook.templating import TemplateFailure, condition, render


def test_single_expression_keeps_its_type() -> None:
    """'{{ config.max_batch_size // 2 }}' renders to an int, not a string."""
    context = {"config": {"max_batch_size": 32}}
    assert 32 // 2 == render("{{ config.max_batch_size // 2 }}", context)


def test_mixed_text_renders_to_a_string() -> None:
    """Text around an expression gives a string."""
    assert "model digits" == render("model {{ m }}", {"m": "digits"})


def test_nested_values_are_rendered() -> None:
    """Dicts and lists inside with: are rendered recursively."""
    context = {"m": "digits", "n": 3}
    expected = {"model": "digits", "patch": {"instance_count": 3}, "list": ["digits", 1]}
    actual = render(
        {"model": "{{ m }}", "patch": {"instance_count": "{{ n }}"}, "list": ["{{ m }}", 1]},
        context,
    )
    assert expected == actual


def test_undefined_is_an_error() -> None:
    """A typo in a variable name fails loudly instead of rendering ''."""
    with pytest.raises(TemplateFailure, match="undefined"):
        render("{{ config.max_batch_sise }}", {"config": {"max_batch_size": 4}})


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ config.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ (lambda: 1) }}",
    ],
)
def test_sandbox_escape_attempts_fail(attack: str) -> None:
    """Reaching for Python internals from a template is refused."""
    with pytest.raises(TemplateFailure):
        render(attack, {"config": {}})


def test_templates_cannot_mutate_the_context() -> None:
    """The immutable sandbox refuses dict.update on template data."""
    context = {"config": {"max_batch_size": 4}}
    with pytest.raises(TemplateFailure, match="sandbox"):
        render("{{ config.update({'max_batch_size': 1}) }}", context)
    assert {"max_batch_size": 4} == context["config"]


def test_conditions_and_bit_tests() -> None:
    """Conditions evaluate to bools; has_bit reads NVML reason masks."""
    assert condition("reasons is has_bit(64)", {"reasons": 0x40 | 0x1})
    assert not condition("reasons is has_bit(128)", {"reasons": 0x40})
    assert condition("not steps.a.verified", {"steps": {"a": {"verified": False}}})
