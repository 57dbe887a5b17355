"""Where sentinel's shipped files are: playbooks, alerts, dashboards, the demo's examples.

An installed wheel carries them as package data in ``sentinel/defaults/`` (setup.py copies
them in at build time); a checkout (editable install, ``PYTHONPATH``) has them at the
repository's top level, which stays their source of truth.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from sentinel.base.errors import SentinelError

# name under sentinel/defaults/ -> its folder in a checkout (setup.py:SHIPPED copies these)
CHECKOUT_LAYOUT: dict[str, str] = {
    "playbooks": "playbooks",
    "alerts": "alerts",
    "dashboards": "dashboards",
    "examples": "examples",
    "gpu-traces": "tests/data/gpu",
}


class MissingAssets(SentinelError):
    """Neither the installed package nor a checkout holds the shipped files."""


def packaged_root() -> Path:
    """``sentinel/defaults/`` of the imported package (present in a built wheel only)."""
    return Path(str(files("sentinel"))) / "defaults"


def checkout_root() -> Path:
    """The repository root, when sentinel is imported from a checkout."""
    return Path(str(files("sentinel"))).parent


def shipped(name: str) -> Path:
    """The folder of shipped files called ``name`` (a key of CHECKOUT_LAYOUT).

    The installed package's copy wins; a checkout's top-level folder is the fallback.
    """
    if name not in CHECKOUT_LAYOUT:
        raise KeyError(name)
    packaged = packaged_root() / name
    if packaged.is_dir():
        return packaged
    checkout = checkout_root() / CHECKOUT_LAYOUT[name]
    if checkout.is_dir():
        return checkout
    raise MissingAssets(
        f"sentinel's {name} are neither in {packaged} (a built wheel) nor in {checkout} "
        "(a checkout); reinstall the triton-sentinel wheel"
    )
