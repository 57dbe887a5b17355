"""The notifiers: config section, checked through the real config loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.base.yamlsource import InvalidFile
from sentinel.config import load_config


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("notifiers:\n  slack:\n    enabled: true\n", "neither a token nor a webhook_url"),
        ("notifiers:\n  slack:\n    enabled: true\n    token: xoxb-1\n", "needs a channel"),
        ("notifiers:\n  pagerduty:\n    enabled: true\n", "no routing_key"),
        (
            "notifiers:\n  pagerduty:\n    routing_key: k\n    base_url: http://x\n",
            "https",
        ),
        ("notifiers:\n  outbox:\n    backoff_initial_s: 0\n", "greater than 0"),
    ],
)
def test_bad_notifier_config_names_file_and_problem(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    """Misconfigured notifiers fail at load with the file and the reason."""
    path = tmp_path / "sentinel.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(InvalidFile) as info:
        load_config(path, environ={})
    [problem] = info.value.problems
    assert str(problem).startswith(f"{path}:")
    assert message in str(problem)


def test_secrets_from_env_enable_a_notifier(tmp_path: Path) -> None:
    """A token given only through the environment satisfies an enabled notifier."""
    path = tmp_path / "sentinel.yaml"
    path.write_text("notifiers:\n  slack:\n    enabled: true\n    channel: C1\n", encoding="utf-8")
    config = load_config(path, environ={"SENTINEL_NOTIFIERS__SLACK__TOKEN": "xoxb-123"})
    assert "xoxb-123" == config.notifiers.slack.bot_token()
