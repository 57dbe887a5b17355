"""observe: probes turn the world into timestamped samples (see samples.py)."""
