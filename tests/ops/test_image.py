"""The container image: the Dockerfile and the Docker-free build stay equivalent, and the
image built here runs sentinel against a real Triton.

Building the image (deploy/image/build.sh: mmdebstrap + umoci, about a minute and a half
on two cores, with the wheels from the package index) and running it (podman, rootful,
vfs storage) are too slow and too root-bound for every CI run, so those tests run only
with ``TEST_SENTINEL_IMAGE=1`` (``TEST_SENTINEL_IMAGE_OCI=LAYOUT:TAG`` reuses a built image).
The equivalence checks are cheap and always run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import sentinel
from sentinel.config import load_config
from sentinel.testing.triton_local import LocalTriton

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "deploy" / "image"
DOCKERFILE = REPO / "Dockerfile"
BUILD_SH = IMAGE_DIR / "build.sh"


def image_env() -> dict[str, str]:
    """deploy/image/image.env: the recipe's shell assignments."""
    values = {}
    for line in (IMAGE_DIR / "image.env").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = " ".join(shlex.split(value))
    return values


def dockerfile_args() -> dict[str, set[str]]:
    """Every default the Dockerfile gives each ARG (a name may be declared per stage)."""
    args: dict[str, set[str]] = {}
    for match in re.finditer(r"^ARG (\w+)=(.*)$", DOCKERFILE.read_text(encoding="utf-8"), re.M):
        args.setdefault(match[1], set()).add(" ".join(shlex.split(match[2])))
    return args


def constraints() -> dict[str, str]:
    """deploy/image/constraints.txt as {canonical name: pinned version}."""
    pins = {}
    for line in (IMAGE_DIR / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_dockerfile_uses_the_recipe_of_the_docker_free_build() -> None:
    """The Dockerfile's suite, Debian packages, user and paths are those of image.env."""
    env, args = image_env(), dockerfile_args()
    for name in ["DEBIAN_PACKAGES", "SENTINEL_UID", "SENTINEL_GID", "VENV", "STATE_DIR"]:
        assert {env[name]} == args[name], name
    assert {env["CONFIG_DIR"]} == args["CONFIG_DIR"]
    (base,) = args["BASE"]
    assert base.startswith(f"debian:{env['DEBIAN_SUITE']}-")  # a dated tag, not :latest
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "deploy/image/constraints.txt" in text
    assert "deploy/image/sentinel.yaml" in text
    assert "USER ${SENTINEL_UID}:${SENTINEL_GID}" in text


def test_dockerfile_and_build_script_start_sentinel_the_same_way() -> None:
    """Entrypoint, command, config path and exposed ports agree between the two builds."""
    env = image_env()
    script = BUILD_SH.read_text(encoding="utf-8").replace("$VENV", env["VENV"])
    script = script.replace("$CONFIG_DIR", env["CONFIG_DIR"])
    entrypoint = re.findall(r"--config\.entrypoint (\S+)", script)
    text = DOCKERFILE.read_text(encoding="utf-8")
    (docker_entry,) = re.findall(r"^ENTRYPOINT (.*)$", text, re.M)
    assert [e.strip('"') for e in entrypoint] == json.loads(docker_entry)
    assert [c.strip('"') for c in re.findall(r"--config\.cmd (\S+)", script)] == json.loads(
        re.findall(r"^CMD (.*)$", text, re.M)[0]
    )
    assert f"SENTINEL_CONFIG={env['CONFIG_DIR']}/sentinel.yaml" in script
    assert "SENTINEL_CONFIG=${CONFIG_DIR}/sentinel.yaml" in text
    ports = set(re.findall(r"--config\.exposedports (\S+)", script))
    (docker_ports,) = re.findall(r"^EXPOSE (.*)$", text, re.M)
    assert ports == set(docker_ports.split())
    assert "deploy/image/constraints.txt" in script


def test_constraints_pin_every_runtime_dependency_within_its_range() -> None:
    """Each dependency of pyproject.toml is pinned, at a version its range accepts."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = constraints()
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in deploy/image/constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), spec


def test_image_default_config_loads_and_uses_the_image_paths() -> None:
    """The image's default config is valid and points at the image's state and playbooks."""
    env = image_env()
    config = load_config(IMAGE_DIR / "sentinel.yaml")
    assert Path(env["STATE_DIR"]) == Path(config.state_dir)
    assert [Path(env["CONFIG_DIR"]) / "playbooks"] == [Path(d) for d in config.playbooks.dirs]


# -- the image itself (opt-in) -------------------------------------------------------


class Podman:
    """podman with its own storage in a temporary folder (rootful, vfs: works in sandboxes).

    runc, not crun: crun refuses hosts with hybrid cgroups. The ulimits are pinned because
    podman's defaults exceed the hard limits of a process without CAP_SYS_RESOURCE.
    """

    def __init__(self, root: Path) -> None:
        runtime = os.environ.get("TEST_PODMAN_RUNTIME") or (
            "runc" if shutil.which("runc") else "crun"
        )
        self.base = ["podman", "--storage-driver", "vfs", "--root", str(root / "storage"),
                     "--runroot", str(root / "run"), "--runtime", runtime]  # fmt: skip
        self.image = ""

    def pull(self, reference: str) -> None:
        """Load an OCI layout (``oci:PATH:TAG``) into this storage."""
        self.image = self.call("pull", "-q", reference).stdout.strip()

    def call(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=300)
        assert 0 == proc.returncode, proc.stderr[-3000:]
        return proc

    def run(self, *args: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """Run the image (its own entrypoint unless options say otherwise) on the host network."""
        return subprocess.run(
            [*self.base, "run", "--rm", "--network", "host",
             "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096",
             *options, self.image, *args],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """The image, built by deploy/image/build.sh (or TEST_SENTINEL_IMAGE_OCI), in podman."""
    if os.environ.get("TEST_SENTINEL_IMAGE") != "1":
        pytest.skip("building and running the image is opt-in: TEST_SENTINEL_IMAGE=1")
    for tool in ["podman", "mmdebstrap", "umoci"]:
        assert shutil.which(tool), f"{tool} is missing (apt-get install {tool})"
    root = tmp_path_factory.mktemp("image")
    reference = os.environ.get("TEST_SENTINEL_IMAGE_OCI")
    if not reference:
        out = root / "out"
        env = {**os.environ, "OUT": str(out), "PYTHON": os.environ.get("PYTHON", "python3")}
        proc = subprocess.run(
            ["sh", str(BUILD_SH)], capture_output=True, text=True, timeout=900, env=env
        )
        assert 0 == proc.returncode, proc.stdout[-3000:] + proc.stderr[-3000:]
        reference = f"{out / 'oci'}:{sentinel.__version__}"
    server = Podman(root)
    server.pull(f"oci:{reference}")
    yield server
    subprocess.run([*server.base, "rmi", "-f", server.image], capture_output=True, timeout=120)


def test_image_answers_version_as_a_non_root_user(podman: Podman) -> None:
    """`sentinel --version` runs in the image, as uid 10001 (not root)."""
    assert f"sentinel {sentinel.__version__}" == podman.run("--version").stdout.strip()
    whoami = podman.run("-u", options=("--entrypoint", "id"))
    assert image_env()["SENTINEL_UID"] == whoami.stdout.strip()


def test_image_checks_its_default_config(podman: Podman) -> None:
    """`sentinel config check` accepts the image's own config at $SENTINEL_CONFIG."""
    path = image_env()["CONFIG_DIR"] + "/sentinel.yaml"
    proc = podman.run("config", "check", path)
    assert 0 == proc.returncode, proc.stderr
    assert f"{path}: ok" == proc.stdout.strip()


@pytest.mark.triton
def test_image_runs_once_against_a_real_triton(
    podman: Podman, triton_server: LocalTriton, tmp_path: Path
) -> None:
    """`sentinel run --once` in the image reaches the host's real Triton and runs a canary."""
    config: dict[str, Any] = {
        "pod": "image-test",
        "triton": {"url": triton_server.grpc_url, "metrics_url": triton_server.metrics_url},
        "canaries": [{"model": "digits", "golden_set": "digits.npz", "batch_sizes": [1]}],
        "gpu": {"source": "off"},
    }
    mounted = tmp_path / "config"
    mounted.mkdir(mode=0o755)
    mounted.chmod(0o755)  # the image's user reads it
    (mounted / "sentinel.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    shutil.copy(REPO / "examples" / "golden" / "digits.npz", mounted / "digits.npz")
    for path in mounted.iterdir():
        path.chmod(0o644)
    proc = podman.run(
        "run", "--config", "/srv/test/sentinel.yaml", "--once", "--json",
        options=("-v", f"{mounted}:/srv/test:ro"),
    )  # fmt: skip
    assert 0 == proc.returncode, proc.stderr[-3000:]
    records = json.loads(proc.stdout)
    health = [r for r in records if r["type"] == "triton"]
    canaries = [r for r in records if r["type"] == "canary"]
    assert [(True, True)] == [(h["live"], h["ready"]) for h in health], proc.stdout
    assert ["ok"] == [c["outcome"] for c in canaries], proc.stdout
