"""``hrl skills list | show | verify``: the skill registry from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hrl_runtime.cli.common import WithJson, emit
from hrl_runtime.registry import PackageEntry, SkillRegistry, verify_package, version_key


def entry_json(entry: PackageEntry) -> dict[str, Any]:
    """One registry entry as JSON: name, version, kind, role, source, path, components."""
    manifest = entry.manifest
    return {
        "name": entry.name,
        "version": entry.version,
        "kind": entry.kind,
        "role": entry.role,
        "source": entry.source,
        "path": str(entry.path),
        "hold_steps": manifest.get("hold_steps"),
        "components": {k: v is not None for k, v in manifest.get("components", {}).items()},
        "description": manifest.get("description", ""),
    }


def cmd_skills_list(args: argparse.Namespace) -> int:
    registry = SkillRegistry()
    found, invalid = registry.entries()
    entries = sorted(found, key=lambda e: (e.name, version_key(e.version)))
    rows = [entry_json(e) for e in entries]
    lines = [f"{'name@version':28} {'kind':16} {'source':16} components"]
    for row in rows:
        offered = ",".join(k for k, present in row["components"].items() if present) or "-"
        lines.append(
            f"{row['name'] + '@' + row['version']:28} {row['kind']:16} {row['source']:16} {offered}"
        )
    lines += [f"invalid: {bad.error}" for bad in invalid]
    problems = [
        {"path": str(bad.path), "name": bad.name, "source": bad.source, "error": str(bad.error)}
        for bad in invalid
    ]
    payload = {"skills": rows, "errors": [str(bad) for bad in invalid], "invalid": problems}
    emit(args, payload, "\n".join(lines))
    return 0


def cmd_skills_show(args: argparse.Namespace) -> int:
    entry = SkillRegistry().resolve(args.name)
    payload = {**entry_json(entry), "manifest": entry.manifest}
    text = json.dumps(entry.manifest, indent=2)
    emit(args, payload, f"{entry.ref} from {entry.path}\n{text}")
    return 0


def cmd_skills_verify(args: argparse.Namespace) -> int:
    report = verify_package(Path(args.path))
    files = ", ".join(f"{k} ({v['parameters']} parameters)" for k, v in report["files"].items())
    emit(args, report, f"OK {report['name']}@{report['version']} ({report['kind']}): {files}")
    return 0


def add_commands(commands: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl skills list``, ``hrl skills show NAME`` and ``hrl skills verify PATH``."""
    skills = commands.add_parser("skills", help="list, show and verify skill packages")
    actions = skills.add_subparsers(dest="skills_command", required=True, metavar="ACTION")
    listing = with_json(actions.add_parser("list", help="packages on the search path"))
    listing.set_defaults(func=cmd_skills_list)
    show = with_json(actions.add_parser("show", help="one package's manifest"))
    show.add_argument("name", help="NAME or NAME@VERSION")
    show.set_defaults(func=cmd_skills_show)
    verify = with_json(
        actions.add_parser("verify", help="run every check a load runs, building nothing")
    )
    verify.add_argument("path", help="package directory")
    verify.set_defaults(func=cmd_skills_verify)
