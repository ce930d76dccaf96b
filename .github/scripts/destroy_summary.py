"""Markdown for the job summary of a `pulumi destroy`: what was removed, kept and left.

Usage: python .github/scripts/destroy_summary.py --stack dev --before before.json \
           --after after.json [--outcome success]

`before.json`/`after.json` are `pulumi stack export` files taken around the destroy. A resource
in `before` but not in `after` left the stack: it was deleted, unless it had `retainOnDelete`
(prod's data buckets with `retainData`), in which case Pulumi forgot it and AWS still holds it.
Anything still in `after` was not destroyed (a failure or a protected resource).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Bookkeeping entries, not cloud resources.
INTERNAL_TYPES = ("pulumi:pulumi:Stack", "pulumi:providers:")


@dataclass(frozen=True)
class Resource:
    urn: str
    type: str
    id: str
    retained: bool
    protected: bool

    @property
    def name(self) -> str:
        # URN: urn:pulumi:STACK::PROJECT::TYPE$...::NAME
        return self.urn.rsplit("::", 1)[-1]


def load_resources(path: Path | None) -> dict[str, Resource]:
    """Resources of a stack export by URN; a missing file means an empty (or gone) stack."""
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return {}
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SystemExit(f"error: {path} is not a pulumi stack export: {err}") from err
    found: dict[str, Resource] = {}
    for res in (doc.get("deployment") or {}).get("resources") or []:
        rtype = res.get("type", "")
        if rtype.startswith(INTERNAL_TYPES):
            continue
        found[res["urn"]] = Resource(
            urn=res["urn"],
            type=rtype,
            id=str(res.get("id", "")),
            retained=bool(res.get("retainOnDelete", False)),
            protected=bool(res.get("protect", False)),
        )
    return found


def _table(resources: list[Resource]) -> list[str]:
    rows = ["| type | name | physical id |", "| --- | --- | --- |"]
    rows += [f"| `{r.type}` | `{r.name}` | `{r.id}` |" for r in resources]
    return rows


def summarize(
    stack: str, before: dict[str, Resource], after: dict[str, Resource], outcome: str
) -> str:
    gone = sorted((r for u, r in before.items() if u not in after), key=lambda r: (r.type, r.urn))
    deleted = [r for r in gone if not r.retained]
    retained = [r for r in gone if r.retained]
    left = sorted(after.values(), key=lambda r: (r.type, r.urn))
    lines = [
        f"## pulumi destroy: stack `{stack}` ({outcome})",
        "",
        f"{len(deleted)} deleted, {len(retained)} kept in AWS (retainOnDelete), "
        f"{len(left)} still in the stack.",
    ]
    if deleted:
        lines += ["", "### Deleted", "", *_table(deleted)]
    if retained:
        lines += [
            "",
            "### Removed from the stack but kept in AWS (retainOnDelete)",
            "",
            *_table(retained),
        ]
    if left:
        lines += ["", "### Still in the stack (not destroyed)", "", *_table(left)]
    if not before:
        lines += ["", "The stack held no resources before the destroy."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stack", required=True)
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, default=None)
    p.add_argument("--outcome", default="unknown", help="the destroy step's outcome")
    args = p.parse_args(argv)
    text = summarize(
        args.stack, load_resources(args.before), load_resources(args.after), args.outcome
    )
    print(text)
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
