"""A config folder for CLI tests: one playbook that halves the batch, and a sentinel.yaml."""

from __future__ import annotations

from pathlib import Path

HALVE_PLAYBOOK = """\
name: halve
description: halve the batch
triggers: [{kinds: [latency_spike]}]
steps:
  - name: halve
    action: triton.load_model
    with: {model: "{{ target.model }}", patch: {max_batch_size: 4}}
"""


def write_config(folder: Path, settings: str) -> Path:
    """``folder/playbooks/halve.yaml`` and ``folder/sentinel.yaml`` holding ``settings`` (YAML
    lines) and that playbook folder; returns the config's path."""
    (folder / "playbooks").mkdir()
    (folder / "playbooks" / "halve.yaml").write_text(HALVE_PLAYBOOK, encoding="utf-8")
    path = folder / "sentinel.yaml"
    path.write_text(settings + "playbooks: {dirs: [playbooks]}\n", encoding="utf-8")
    return path
