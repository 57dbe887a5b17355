"""`sentinel model backup|verify|restore`: known-good model files.

``backup`` copies every known-good version recorded in the state database (with its
manifest) to a folder, refusing files that no longer match their manifest. ``verify``
hashes a backup folder against its manifests. ``restore`` runs the shipped
``restore-known-good`` playbook through the daemon (or ``--local``), so the
executor's locks, dry-run, audit, canary verification and rollback apply to it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sentinel.base import db
from sentinel.base.modelrepo import IntegrityError, find_backups, verify_backup, write_backup
from sentinel.cli import support as common
from sentinel.probes.model_files import ManifestStore
from sentinel.vocabulary.ports import PlaybookService

PLAYBOOK = "restore-known-good"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("model", help="back up, verify and restore known-good model files")
    msub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)

    b = msub.add_parser("backup", help="copy known-good versions and their manifests to DIR")
    common.add_config_args(b, local_flag=False)
    b.add_argument("--to", required=True, metavar="DIR", type=Path)
    b.add_argument("--model", help="only this model")
    b.set_defaults(handler=_backup)

    v = msub.add_parser("verify", help="check a backup against its manifests; 0 if all match")
    v.add_argument("dir", metavar="DIR", type=Path)
    v.add_argument("--json", action="store_true", help="JSON output")
    v.set_defaults(handler=_verify)

    r = msub.add_parser("restore", help="restore a model's last known-good files and reload it")
    common.add_config_args(r)
    r.add_argument("model")
    r.add_argument("--version", default="", help="the version to restore (default: latest)")
    r.add_argument("--from", dest="source", type=Path, help="backup folder (default: config's)")
    r.add_argument("--dry-run", action="store_true", help="plan and record; change nothing")
    r.add_argument("--json", action="store_true", help="JSON output")
    r.set_defaults(handler=_restore)


def _backup(args: argparse.Namespace) -> int:
    with common.session(args, local=True) as s:
        if s is None:
            return 2
        repo = s.config.model_files.repository
        if repo is None:
            print("model_files.repository is not set in the config", file=sys.stderr)
            return 2
        conn = db.open_read_only(db.path_in(s.config.state_dir))  # never creates state
        manifests = []
        if conn is not None:
            try:
                manifests = ManifestStore(conn).all_latest(args.model)
            finally:
                conn.close()
        if not manifests:
            print("no known-good manifest recorded yet (canaries prove a version)", file=sys.stderr)
            return 1
        code = 0
        for m in manifests:
            try:
                path = write_backup(repo / m.model, m, args.to)
            except (IntegrityError, OSError) as exc:
                print(f"{m.model}:{m.version}: NOT backed up: {exc}", file=sys.stderr)
                code = 1
                continue
            print(f"{m.model}:{m.version}  {len(m.files)} files  {m.digest[:16]}  -> {path}")
        return code


def _verify(args: argparse.Namespace) -> int:
    backups = find_backups(args.dir)
    if not backups:
        print(f"{args.dir}: no backups (no */*/manifest.json)", file=sys.stderr)
        return 2
    report: list[dict[str, Any]] = []
    for path in backups:
        try:
            manifest, problems = verify_backup(path)
        except IntegrityError as exc:
            report.append({"path": str(path), "ok": False, "error": str(exc), "files": []})
            continue
        report.append(
            {
                "path": str(path),
                "model": manifest.model,
                "version": manifest.version,
                "ok": not problems,
                "files": [p.as_dict() for p in problems],
            }
        )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for item in report:
            print(f"{'ok' if item['ok'] else 'BAD':<4} {item['path']}  {item.get('error', '')}")
            for f in item["files"]:
                print(
                    f"     {f['file']}: {f['problem']} (sha256 {f['actual']}, "
                    f"manifest {f['expected']})"
                )
    return 0 if all(item["ok"] for item in report) else 1


def _restore(args: argparse.Namespace) -> int:
    target = {"model": args.model}
    if args.version:
        target["version"] = args.version
    params = {"version": args.version, "backup_dir": str(args.source or "")}
    body = {"target": target, "params": params, "dry_run": args.dry_run}
    with common.session(args) as s:
        if s is None:
            return 2

        async def local(svc: PlaybookService) -> dict[str, Any]:
            return await svc.run(PLAYBOOK, target, params, args.dry_run, common.local_actor())

        result = s.call("POST", f"/v1/playbooks/{PLAYBOOK}/run", local, body, needs_triton=True)
        if result is None:
            return s.code
        common.print_run(result, as_json=args.json)
        return 0 if restored(result) else 1


def restored(result: dict[str, Any]) -> bool:
    """The run restored the files and the canary verified it (or planned it, in a dry run)."""
    if result.get("dry_run"):
        return bool(result.get("status") == "planned")
    return any(
        step.get("name") == "restore" and step.get("status") == "verified"
        for step in result.get("steps", [])
    )
