"""Writes a CycloneDX SBOM (JSON) of a root filesystem: its Debian packages and its venv.

    python tools/sbom.py ROOTFS [--venv /opt/sentinel] > sbom.cdx.json
    python tools/sbom.py --constraints sbom.cdx.json > deploy/image/constraints.txt

Debian packages come from ROOTFS/var/lib/dpkg/status, Python distributions from the
``*.dist-info`` folders of the venv's site-packages; both get package URLs (purl), and
the BOM's subject is the triton-sentinel distribution found there. deploy/image/build.sh
runs it on the image's root filesystem.
"""

from __future__ import annotations

import argparse
import email.parser
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import LicenseExpression
from cyclonedx.output.json import JsonV1Dot5
from packageurl import PackageURL

SUBJECT = "triton-sentinel"
VENV_SEED = {"pip", "setuptools", "wheel"}  # put there by `python3 -m venv`, not dependencies
CONSTRAINTS_HEADER = """\
# Python dependencies of the image, pinned (deploy/image/build.sh and the Dockerfile).
# Regenerate from a fresh build's SBOM:
#   python tools/sbom.py --constraints build/image/sbom.cdx.json > deploy/image/constraints.txt
"""


def dpkg_packages(rootfs: Path) -> Iterator[Component]:
    """Installed Debian packages of ``rootfs`` (dpkg's status file)."""
    status = (rootfs / "var/lib/dpkg/status").read_text(encoding="utf-8")
    for stanza in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" not in fields or "installed" not in fields.get("Status", ""):
            continue
        name, version, arch = fields["Package"], fields["Version"], fields.get("Architecture")
        purl = PackageURL(
            "deb", "debian", name, version, qualifiers={"arch": arch} if arch else None
        )
        yield Component(
            type=ComponentType.LIBRARY,
            name=name,
            version=version,
            purl=purl,
            bom_ref=str(purl),
            description=fields.get("Description"),
        )


def python_distributions(rootfs: Path, venv: str) -> Iterator[Component]:
    """Python distributions installed in the venv at ``venv`` inside ``rootfs``."""
    for metadata_file in sorted(
        rootfs.glob(f"{venv.lstrip('/')}/lib/python3*/site-packages/*.dist-info/METADATA")
    ):
        meta = email.parser.Parser().parsestr(metadata_file.read_text(encoding="utf-8"))
        name, version = meta["Name"], meta["Version"]
        purl = PackageURL("pypi", None, name.lower().replace("_", "-").replace(".", "-"), version)
        expression = meta.get("License-Expression")
        yield Component(
            type=ComponentType.APPLICATION if name == SUBJECT else ComponentType.LIBRARY,
            name=name,
            version=version,
            purl=purl,
            bom_ref=str(purl),
            description=meta.get("Summary"),
            licenses=[LicenseExpression(expression)] if expression else None,
        )


def build_bom(rootfs: Path, venv: str) -> Bom:
    """The BOM of ``rootfs``: triton-sentinel as its subject, every package a component."""
    bom = Bom()
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:  # reproducible builds: the same input gives the same BOM timestamp
        bom.metadata.timestamp = datetime.fromtimestamp(int(epoch), tz=UTC)
    for component in [*python_distributions(rootfs, venv), *dpkg_packages(rootfs)]:
        if component.name == SUBJECT:
            bom.metadata.component = component
        else:
            bom.components.add(component)
    return bom


def constraints(sbom: dict[str, Any]) -> list[str]:
    """pip constraints (``name==version``) of the Python components of an SBOM."""
    pins = []
    for component in sbom.get("components", []):
        purl = PackageURL.from_string(component["purl"])
        if purl.type == "pypi" and purl.name not in VENV_SEED:
            pins.append(f"{purl.name}=={purl.version}")
    return sorted(pins, key=str.lower)


def main(argv: list[str] | None = None) -> int:
    """Print the SBOM of a root filesystem as CycloneDX 1.5 JSON (or an SBOM's pins)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rootfs", type=Path, help="root filesystem, or with --constraints an SBOM")
    parser.add_argument("--venv", default="/opt/sentinel", help="the venv's path inside ROOTFS")
    parser.add_argument("--constraints", action="store_true", help="print an SBOM's pip pins")
    args = parser.parse_args(argv)
    if args.constraints:
        sbom = json.loads(args.rootfs.read_text(encoding="utf-8"))
        print(CONSTRAINTS_HEADER + "\n".join(constraints(sbom)))
        return 0
    bom = build_bom(args.rootfs, args.venv)
    if bom.metadata.component is None:
        print(f"sbom: no {SUBJECT} distribution in {args.rootfs}{args.venv}", file=sys.stderr)
        return 2
    sys.stdout.write(JsonV1Dot5(bom).output_as_string(indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
