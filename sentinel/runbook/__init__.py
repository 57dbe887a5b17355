"""act: YAML playbooks run by one executor that owns every safety rule."""
