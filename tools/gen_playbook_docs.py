"""Regenerate the playbook reference in docs/playbooks.md and playbooks/playbook.schema.json.

    python tools/gen_playbook_docs.py          # write both
    python tools/gen_playbook_docs.py --check  # exit 1 if either is out of date

Both come from the code (sentinel.runbook.reference, sentinel.runbook.schema); the tests
check they are up to date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sentinel.runbook.reference import reference, splice
from sentinel.runbook.schema import SCHEMA_ID, json_schema

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "playbooks.md"
SCHEMA = ROOT / SCHEMA_ID


def schema_text() -> str:
    """The schema file's exact contents."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args()
    wanted = {DOC: splice(DOC.read_text(encoding="utf-8"), reference()), SCHEMA: schema_text()}
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text("utf-8") != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run tools/gen_playbook_docs.py")
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
