"""Public test helpers for users testing their own playbooks and configs."""
