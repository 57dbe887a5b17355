"""The built wheel: carries the shipped files and works outside the checkout.

The wheel is built with ``python -m build`` and installed with ``--no-deps`` into a fresh
venv in a temporary folder; its dependencies come from this test environment through a
``.pth`` line (no index needed). Commands then run there with no PYTHONPATH, so the
checkout cannot be what they find. The full ``sentinel demo`` from the wheel (minutes)
runs only with ``TEST_SENTINEL_WHEEL_DEMO=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

import sentinel
from sentinel.base.assets import CHECKOUT_LAYOUT

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and wheel built from this checkout by ``python -m build``."""
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert 0 == proc.returncode, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    """The built wheel."""
    (found,) = dist.glob("triton_sentinel-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with the wheel installed (its bin/ folder)."""
    root = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300, env=outside_env(),
    )  # fmt: skip
    assert 0 == proc.returncode, proc.stderr
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # the dependencies, from this environment, after the venv's own site-packages
    deps = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "zz_test_dependencies.pth").write_text(deps + "\n", encoding="utf-8")
    return root / "bin"


def outside_env() -> dict[str, str]:
    """This environment without a path to the checkout (or a config of the caller's)."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "SENTINEL_CONFIG"}}


def run_outside(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a command of the venv in its own folder, with no PYTHONPATH to the checkout."""
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]],
        capture_output=True, text=True, timeout=120, cwd=bin_dir.parent, env=outside_env(),
    )  # fmt: skip


def test_twine_check_passes(dist: Path) -> None:
    """`twine check` accepts the sdist and the wheel (metadata and README render)."""
    pytest.importorskip("twine")
    files = sorted(str(p) for p in dist.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert 0 == proc.returncode, proc.stdout + proc.stderr


def test_wheel_carries_every_shipped_file(wheel: Path) -> None:
    """Every playbook, alert file and dashboard of the checkout is in the wheel, and the LICENSE."""
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"sentinel/defaults/{name}/{path.name}"
        for name, pattern in [
            ("playbooks", "*.yaml"),
            ("alerts", "*.rules.yaml"),
            ("dashboards", "*.json"),
        ]
        for path in (REPO / CHECKOUT_LAYOUT[name]).glob(pattern)
    }
    assert expected <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    demo = {
        "sentinel/defaults/examples/golden/digits.npz",
        "sentinel/defaults/examples/model_repository/digits/config.pbtxt",
        "sentinel/defaults/gpu-traces/h200-oom.jsonl",
        "sentinel/defaults/examples/golden/charlm.npz",
        "sentinel/defaults/examples/llm_repository/charlm/config.pbtxt",
        "sentinel/defaults/examples/llm_repository/charlm/1/model.py",
    }
    assert demo <= names


def test_installed_wheel_finds_its_defaults_outside_the_checkout(installed: Path) -> None:
    """From the installed wheel, the playbooks are the package's copy and they validate."""
    proc = run_outside(
        installed,
        "python",
        "-c",
        "import sentinel; from sentinel.base.assets import shipped; "
        "print(sentinel.__file__); print(shipped('playbooks'))",
    )
    assert 0 == proc.returncode, proc.stderr
    module, playbooks = (Path(line) for line in proc.stdout.split())
    assert installed.parent in module.parents  # not the checkout's sentinel
    assert module.parent / "defaults" / "playbooks" == playbooks
    proc = run_outside(installed, "sentinel", "playbook", "validate", str(playbooks))
    assert 0 == proc.returncode, proc.stdout + proc.stderr


def test_installed_sentinel_answers_version_and_demo_help(installed: Path) -> None:
    """`sentinel --version` and `sentinel demo --help` work from the installed wheel."""
    version = run_outside(installed, "sentinel", "--version")
    assert f"sentinel {sentinel.__version__}" == version.stdout.strip()
    demo_help = run_outside(installed, "sentinel", "demo", "--help")
    assert 0 == demo_help.returncode, demo_help.stderr
    assert "--out" in demo_help.stdout


@pytest.mark.triton
@pytest.mark.skipif(
    os.environ.get("TEST_SENTINEL_WHEEL_DEMO") != "1",
    reason="the full demo from the wheel is opt-in",
)
def test_installed_wheel_runs_the_whole_demo(installed: Path) -> None:
    """`sentinel demo` from the installed wheel, in an empty folder, handles every fault."""
    proc = subprocess.run(
        [str(installed / "sentinel"), "demo", "--out", "report"],
        capture_output=True, text=True, timeout=900, cwd=installed.parent,
        env=outside_env(),
    )  # fmt: skip
    assert 0 == proc.returncode, proc.stdout[-4000:] + proc.stderr[-2000:]
